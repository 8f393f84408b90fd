"""Host memory for XLA:CPU processes: keep freed memory instead of returning it.

XLA:CPU allocates each execution's buffers afresh with ``malloc``. glibc
serves a block above its mmap threshold (at most 32 MB) with a new ``mmap``,
and the arenas of XLA's worker threads hand freed memory back to the kernel;
either way the next step writes to fresh pages and takes one page fault per
4 KB page. A training step of the notes' Elman LM (batch 32 x 32, vocabulary
8,000: 32 MB of logits) took about 18,000 page faults, and on a 2-core VM that
was a third of the step (88 ms against 51-63 ms with the settings below;
``launch/benchmarks/lm_step.py``, launch/benchmarks/README.md).

:func:`reuse_freed_memory` asks glibc for what the PyTorch CPU tuning guide
gets from jemalloc or tcmalloc: one arena, no ``mmap`` for large blocks, and
no trimming below 1 GB of free heap, so a step reuses the pages of the step
before. The cost: a process keeps up to 1 GB of freed memory mapped, and the
threads share one arena lock. It changes no result, only where memory comes
from.

It must run before JAX starts its thread pools (before the first JAX
computation); experiment mains (``cli.run``), ``launch.sweep``,
``launch.reproduce`` and ``launch.bench`` call it first. Set
``RNNLAB_HOST_MALLOC=system`` to keep glibc's defaults. Elsewhere than glibc
(macOS, musl) it does nothing.
"""
from __future__ import annotations

import ctypes
import os
import platform

# mallopt(3) parameters, from glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8

_ENV = "RNNLAB_HOST_MALLOC"
_applied = False


def reuse_freed_memory(trim_threshold: int = 1 << 30) -> bool:
  """Sets glibc's allocator to reuse freed memory (see the module docstring).

  Returns whether the settings are in force (``False`` off glibc, or with
  ``RNNLAB_HOST_MALLOC=system``). Calling it again is harmless.
  """
  global _applied
  if _applied:
    return True
  if os.environ.get(_ENV, "reuse") == "system" or platform.libc_ver()[0] != "glibc":
    return False
  try:
    libc = ctypes.CDLL("libc.so.6")
  except OSError:
    return False
  # mallopt returns 1 on success. The arena limit first, so no thread takes an arena of its own.
  ok = (libc.mallopt(_M_ARENA_MAX, 1) == 1
        and libc.mallopt(_M_MMAP_MAX, 0) == 1
        and libc.mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)) == 1)
  _applied = ok
  return ok


def active() -> bool:
  """Whether :func:`reuse_freed_memory` has set the allocator in this process."""
  return _applied
