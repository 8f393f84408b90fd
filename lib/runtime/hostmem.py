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
``launch.reproduce`` and ``launch.bench`` call it first. It was measured on
XLA:CPU only, so by default (``auto``) it applies only where JAX will run on
the CPU: ``JAX_PLATFORMS`` names only ``cpu``, or no accelerator plugin
(``jax_plugins`` entry points, ``libtpu``) is installed or visible. The mode
``RNNLAB_HOST_MALLOC`` (or an entry point's ``--host_malloc``) is ``auto``,
``reuse`` (force it, e.g. for a GPU job's host-side work) or ``system``
(glibc's defaults). Elsewhere than glibc (macOS, musl) it does nothing.
"""
from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import os
import platform
from typing import Mapping, Optional, Sequence

# mallopt(3) parameters, from glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8

_ENV = "RNNLAB_HOST_MALLOC"
MODES = ("auto", "reuse", "system")
_applied = False


def accelerator_plugins() -> list[str]:
  """The JAX accelerator plugins installed (found without importing JAX or them)."""
  names = [ep.name for ep in importlib.metadata.entry_points(group="jax_plugins")]
  if importlib.util.find_spec("libtpu") is not None:
    names.append("libtpu")
  return names


def should_reuse(mode: str, environ: Mapping[str, str], plugins: Sequence[str]) -> bool:
  """Whether ``mode`` applies the settings, given the environment and the plugins.

  ``auto``: only when JAX will run on the CPU (``JAX_PLATFORMS`` names only
  ``cpu``; or, unset, no plugin, or only CUDA plugins with no device visible).
  """
  if mode not in MODES:
    raise ValueError(f"{_ENV}/--host_malloc={mode!r}: expected one of {MODES}.")
  if mode != "auto":
    return mode == "reuse"
  platforms = [p.strip() for p in environ.get("JAX_PLATFORMS", "").split(",") if p.strip()]
  if platforms:
    return all(p == "cpu" for p in platforms)
  no_cuda_device = environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1")
  return all(no_cuda_device and "cuda" in p for p in plugins)


def reuse_freed_memory(trim_threshold: int = 1 << 30, mode: Optional[str] = None,
                       default: str = "auto") -> bool:
  """Sets glibc's allocator to reuse freed memory (see the module docstring).

  ``mode``: ``auto`` / ``reuse`` / ``system``; ``None`` reads ``RNNLAB_HOST_MALLOC``,
  else ``default`` (an entry point's choice). Returns whether the settings are in
  force. Calling it again is harmless.
  """
  global _applied
  if _applied:
    return True
  mode = mode or os.environ.get(_ENV) or default
  if not should_reuse(mode, os.environ, accelerator_plugins() if mode == "auto" else ()):
    return False
  if platform.libc_ver()[0] != "glibc":
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
