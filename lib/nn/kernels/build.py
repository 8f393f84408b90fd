"""Compiling, loading and registering ``rnn_cpu.cc`` (see :mod:`lib.nn.kernels`)."""
from __future__ import annotations

import ctypes
import functools
import glob
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from lib.errors import ConfigError

SOURCE = Path(__file__).with_name("rnn_cpu.cc")
TARGETS = ("RnnlabLstmFwd", "RnnlabLstmBwd", "RnnlabGruFwd", "RnnlabGruBwd",
           "RnnlabAdditiveFwd", "RnnlabAdditiveBwd", "RnnlabSoftmaxNllFwd", "RnnlabSoftmaxNllBwd")
FLAGS = ("-O3", "-march=native", "-mprefer-vector-width=512", "-ffast-math", "-fPIC", "-shared", "-std=c++17", "-w")
# numpy's bundled OpenBLAS (ILP64, scipy-openblas symbol names): sgemm, set and get threads.
BLAS = ("scipy_cblas_sgemm64_", "scipy_openblas_set_num_threads64_",
        "scipy_openblas_get_num_threads64_")


class KernelError(RuntimeError):
  """The fused kernels cannot be built or loaded here; the message says why."""


def _cpu_key() -> str:
  """What ``-march=native`` depends on: the CPU's model and feature flags."""
  try:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    return "".join(sorted({ln for ln in lines if ln.startswith(("flags", "model name"))}))
  except OSError:
    return platform.processor()


def _library_path() -> Path:
  key = hashlib.sha256()
  for part in (SOURCE.read_bytes(), jax.__version__.encode(), " ".join(FLAGS).encode(),
               platform.machine().encode(), _cpu_key().encode()):
    key.update(part)
  root = os.environ.get("RNNLAB_KERNEL_CACHE") or Path.home() / ".cache" / "rnnlab" / "kernels"
  return Path(root) / f"rnn_cpu-{key.hexdigest()[:16]}.so"


def _compile(target: Path) -> None:
  cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
  if not cxx:
    raise KernelError("no C++ compiler (g++, c++ or $CXX) on the PATH")
  target.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
  os.close(fd)
  cmd = [cxx, *FLAGS, f"-I{jax.ffi.include_dir()}", str(SOURCE), "-o", tmp, "-lm"]
  done = subprocess.run(cmd, capture_output=True, text=True)
  if done.returncode:
    os.unlink(tmp)
    errors = [ln for ln in done.stderr.splitlines() if "error" in ln] or ["?"]
    raise KernelError(f"{Path(cxx).name} failed on {SOURCE.name}: {errors[0].strip()}")
  os.replace(tmp, target)  # atomic: concurrent builders each write a whole file


def _blas_addresses() -> list[int]:
  libs = sorted(glob.glob(str(Path(np.__file__).parent.parent / "numpy.libs" / "*openblas*.so*")))
  for path in libs:
    lib = ctypes.CDLL(path)
    if all(hasattr(lib, name) for name in BLAS):
      return [ctypes.cast(getattr(lib, name), ctypes.c_void_p).value for name in BLAS]
  raise KernelError(f"numpy {np.__version__} bundles no OpenBLAS with {BLAS[0]}")


@functools.cache
def _load() -> str:
  """Builds if needed, loads and registers the kernels; '' or why not."""
  if platform.system() != "Linux":
    return f"Linux (this is {platform.system()})"
  try:
    path = _library_path()
    if not path.exists():
      _compile(path)
    lib = ctypes.CDLL(str(path))
    lib.rnnlab_set_blas.argtypes = [ctypes.c_void_p] * 3
    lib.rnnlab_set_blas(*_blas_addresses())
  except (KernelError, OSError) as e:
    return f"its C++ kernels, which could not be built or loaded ({e})"
  for name in TARGETS:
    jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, name)), platform="cpu")
  return ""


def unsupported() -> str:
  """Why the fused kernels cannot run here ('' when they can); builds them on first call."""
  if jax.default_backend() != "cpu":
    return f"the CPU backend (this one is {jax.default_backend()})"
  return _load()


def load() -> None:
  """Builds and registers the kernels, or raises :class:`KernelError` saying why not."""
  why = unsupported()
  if why:
    raise KernelError(f"lib.nn.kernels needs {why}")


def why_not(*arrays) -> str:
  """Why the kernels cannot take these operands ('' when they can): the backend, the
  build, or an operand not in float32."""
  why = unsupported()
  if not why and any(a.dtype != jnp.float32 for a in arrays):
    why = "float32 operands"
  return why


def choose(kernel: str, why: str, where: str, other: str) -> bool:
  """Whether a choice of ``'auto'``, ``'fused'`` or ``other`` (the XLA form) runs the
  fused kernel, given ``why`` it cannot ('' when it can). ``auto`` takes it on one device
  only: XLA's SPMD partitioner would gather a sharded batch to run each call whole on
  every device. ``'fused'`` where it cannot run is a one-line error."""
  if kernel == other:
    return False
  if kernel == "fused" and why:
    raise ConfigError(f"{where}: kernel='fused' needs {why}; use kernel='{other}'.")
  return not why and (kernel == "fused" or jax.device_count() == 1)


def call(name: str, shapes, *args, aliases=None, **attrs):
  """The registered kernel ``name`` on ``args``: float32 results of ``shapes``, XLA
  buffers aliased as ``aliases`` (argument -> result), under ``vmap`` one call on the
  whole batch of problems (``broadcast_all``; the kernels loop over leading axes)."""
  load()
  outs = [jax.ShapeDtypeStruct(s, jnp.float32) for s in shapes]
  return jax.ffi.ffi_call(name, outs, vmap_method="broadcast_all",
                          input_output_aliases=aliases)(*args, **attrs)
