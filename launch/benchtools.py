"""Timing and reporting helpers shared by the benchmarks (no flags: importable anywhere)."""
from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Callable, Sequence


def time_ms(fn: Callable[[], object], *, number: int, repeats: int, warmup: int = 2,
            sync: Callable[[object], object] = lambda x: x) -> float:
  """Median milliseconds per call of ``fn`` over ``repeats`` runs of ``number`` calls.

  ``sync`` forces completion of the last result (``jax.block_until_ready``) so
  asynchronous dispatch is not mistaken for speed.
  """
  for _ in range(warmup):
    sync(fn())
  samples = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    for _ in range(number):
      out = fn()
    sync(out)
    samples.append((time.perf_counter() - t0) * 1e3 / number)
  return statistics.median(samples)


def table(rows: Sequence[dict], columns: Sequence[str]) -> str:
  def fmt(v):
    return f"{v:.3g}" if isinstance(v, float) else str(v)
  out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  out += ["| " + " | ".join(fmt(r.get(c, "—")) for c in columns) + " |" for r in rows]
  return "\n".join(out)


def machine() -> str:
  import jax
  return (f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}, "
          f"jax {jax.__version__} on {jax.devices()[0].platform}")
