"""Fused recurrent layers for XLA:CPU, through ``jax.ffi``.

:mod:`lib.nn.kernels.rnn` runs a whole LSTM or GRU layer (forward, or backward) in one
call of a C++ kernel (``rnn_cpu.cc``): each step one BLAS ``sgemm`` on numpy's bundled
OpenBLAS and one pass over the gates. It is the CPU counterpart of :mod:`lib.nn.cudnn`;
:func:`lib.nn.scans.dense_scan` picks it by :class:`lib.nn.scans.DenseKernel` and the
pure ``lax.scan`` stays the reference (the tests hold the two equal) and the fallback.

The library is compiled on first use with the machine's C++ compiler (``g++`` or
``$CXX``; about 3 seconds) into ``$RNNLAB_KERNEL_CACHE`` (default
``~/.cache/rnnlab/kernels``), under a name keyed by the source, jaxlib's version and
the CPU, and registered with XLA then: importing this package compiles, loads and
registers nothing. ``python -m lib.nn.kernels`` builds it ahead and says where it is
or why it cannot be built.
"""
from lib.nn.kernels.build import call, choose, load, unsupported, why_not

__all__ = ["call", "choose", "load", "unsupported", "why_not"]
