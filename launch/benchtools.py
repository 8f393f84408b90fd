"""Timing and reporting helpers shared by the benchmarks (no flags: importable anywhere)."""
from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Callable, Optional, Sequence


def jitted_step(loss_fn: Callable, tx, params, batch: dict, seed: int = 1) -> Callable[[], object]:
  """A closure running one jitted, state-donating ``make_train_step(loss_fn, tx)`` on the
  fixed ``batch`` per call (the state carried between calls); it returns the loss total."""
  import jax
  import jax.numpy as jnp
  from lib.train.state import TrainState
  from lib.train.step import make_train_step
  state = TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))
  step = jax.jit(make_train_step(loss_fn, tx), donate_argnums=0)
  holder, rng = [state], jax.random.key(seed)

  def run():
    holder[0], m = step(holder[0], batch, rng)
    return m["loss"].total
  return run


def have_torch(peers: Sequence[str]) -> bool:
  """Whether ``peers`` asks for PyTorch and it is installed (a missing one is said once)."""
  if "torch" not in peers:
    return False
  try:
    import torch  # noqa: F401
  except ImportError:
    print("PyTorch is not installed (pip install -r requirements-bench.txt): no torch column.")
    return False
  return True


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


def time_pair_ms(a: Callable[[], object], b: Optional[Callable[[], object]], *, number: int,
                 repeats: int, warmup: int = 2, sync_a: Callable[[object], object] = lambda x: x,
                 sync_b: Callable[[object], object] = lambda x: x,
                 number_b: int | None = None) -> tuple[float, Optional[float]]:
  """Median milliseconds per call of ``a`` and of ``b``, timed in alternation.

  Each repeat times ``number`` calls of ``a`` and then ``number_b`` (default
  ``number``) calls of ``b``, so the two see the same machine: on a shared VM
  the speed drifts by up to 30% within minutes, and timing one system after
  the other puts that drift into their ratio. With ``b=None`` (no peer
  installed) only ``a`` is timed and the second value is ``None``.
  """
  systems = [(a, sync_a, number, [])]
  if b is not None:
    systems.append((b, sync_b, number if number_b is None else number_b, []))
  for _ in range(warmup):
    for fn, sync, _, _ in systems:
      sync(fn())
  for _ in range(repeats):
    for fn, sync, n, out in systems:
      t0 = time.perf_counter()
      for _ in range(n):
        res = fn()
      sync(res)
      out.append((time.perf_counter() - t0) * 1e3 / n)
  medians = [statistics.median(out) for *_, out in systems]
  return medians[0], (medians[1] if b is not None else None)


def time_alternating_ms(fns: dict[str, Callable[[], object]], *, number: int, repeats: int,
                        warmup: int = 2, syncs: Optional[dict] = None) -> dict[str, float]:
  """Median milliseconds per call of each of ``fns``, timed in alternation (as
  :func:`time_pair_ms`, for any number of systems); ``syncs`` by name (default: none)."""
  syncs = syncs or {}
  out = {k: [] for k in fns}
  for _ in range(warmup):
    for k, fn in fns.items():
      syncs.get(k, lambda x: x)(fn())
  for _ in range(repeats):
    for k, fn in fns.items():
      t0 = time.perf_counter()
      for _ in range(number):
        res = fn()
      syncs.get(k, lambda x: x)(res)
      out[k].append((time.perf_counter() - t0) * 1e3 / number)
  return {k: statistics.median(v) for k, v in out.items()}


def table(rows: Sequence[dict], columns: Sequence[str]) -> str:
  def fmt(v):
    return f"{v:.3g}" if isinstance(v, float) else str(v)
  out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  out += ["| " + " | ".join(fmt(r.get(c, "—")) for c in columns) + " |" for r in rows]
  return "\n".join(out)


def machine() -> str:
  import jax
  from lib.runtime import hostmem
  return (f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}, "
          f"jax {jax.__version__} on {jax.devices()[0].platform}, host malloc "
          f"{'reuse' if hostmem.active() else 'system'}")
