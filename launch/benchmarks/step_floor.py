"""The translation step against the time of its matrix products alone.

  python -m launch.bench step_floor [--repeats=5]

A vmapped sweep beats a shell loop of single runs by what it saves per trial:
start-up, compilation, evaluation, and whatever a step of 32 trials costs less
than 32 steps. For the notes' translation LSTM (``translation:lstm``, batch 64,
hidden 256, sources of 50 and targets of 10 symbols) this benchmark times one
trial's jitted training step, the matrix products that step cannot avoid, each
as the recurrences run them (one ``h @ w_rec`` per time step, forward; one
``dz @ w_rec^T`` per time step, backward; the two ``w_rec`` gradients as one
product each over all steps), and the forward products of 32 trials in one ``vmap``
(per trial). Where the products alone take most of what a
sweep may spend per trial-step, no backend can reach a large speed-up.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from launch.benchmarks import sweep_trials, trial_step
from launch.benchtools import time_ms
from lib.train import optim
from lib.train.state import init_state
from lib.train.step import task_step

COLUMNS = ("what", "ms", "gflop", "gflop_per_s")


def _chain(x, w, steps: int, width: int):
  """``steps`` dependent products ``x @ w`` (the carry cut back to ``width`` columns)."""
  def body(c, _):
    return jnp.tile((c @ w)[:, :width], (1, -(-c.shape[1] // width)))[:, :c.shape[1]], None
  return jax.lax.scan(body, x, None, length=steps)[0]


def _row(what: str, ms: float, flop: float = 0.0) -> dict:
  return {"what": what, "ms": round(ms, 3), "gflop": round(flop / 1e9, 3) or "",
          "gflop_per_s": round(flop / ms / 1e6) if flop else ""}


def run(peers=(), repeats: int = 5) -> list[dict]:
  del peers
  build, base = trial_step._built(*sweep_trials.SWEEPS["translation"][:2])
  built = build(base)
  state, tx, schedule, key = init_state(built.task, built.config)
  step = task_step(built.task, tx, schedule, optim.scales_gradients(built.config.optimizer))
  batch = jax.device_put(built.task.train_batch(0))
  hp = dict(built.task.hparams)
  one_step = jax.jit(lambda s, b, k: step(s, b, k, hp))
  sync = jax.block_until_ready
  rows = [_row("one trial's training step (jitted)",
               time_ms(lambda: one_step(state, batch, key), number=10, repeats=repeats,
                       sync=sync))]
  B, S = batch["src"].shape
  T = batch["tgt_in"].shape[1]
  H = built.config.model.hidden
  k = jax.random.key(0)
  # Scaled so that the chained products keep their magnitude (no overflow to inf).
  w = jax.random.normal(k, (H, 4 * H)) / H ** 0.5
  w_t = jax.random.normal(k, (4 * H, H)) / (4 * H) ** 0.5
  h, d = jax.random.normal(k, (B, H)), jax.random.normal(k, (B, 4 * H))
  steps = S + T
  forward = jax.jit(lambda x, w: _chain(x, w, steps, H))
  backward = jax.jit(lambda x, w: _chain(x, w, steps, H))
  grad_w = jax.jit(lambda a, b, c, e: (a.T @ b, c.T @ e))
  hs, ds = jax.random.normal(k, (B * S, H)), jax.random.normal(k, (B * S, 4 * H))
  ht, dt = jax.random.normal(k, (B * T, H)), jax.random.normal(k, (B * T, 4 * H))
  per = 2 * B * H * 4 * H
  parts = [
      (f"{steps} forward products h @ w_rec ({B}x{H} by {H}x{4 * H}), chained",
       lambda: forward(h, w), steps * per),
      (f"{steps} backward products dz @ w_rec^T ({B}x{4 * H} by {4 * H}x{H}), chained",
       lambda: backward(d, w_t), steps * per),
      (f"the two w_rec gradients ({B * S} and {B * T} steps x {H} x {4 * H})",
       lambda: grad_w(hs, ds, ht, dt), steps * per)]
  total = 0.0
  for what, fn, flop in parts:
    ms = time_ms(fn, number=10, repeats=repeats, sync=sync)
    total += ms
    rows.append(_row(what, ms, flop))
  rows.append(_row("the step's products alone (sum of the three rows above)", total, 3 * steps * per))
  hs32, ws32 = jnp.stack([h] * 32), jnp.stack([w] * 32)
  forward32 = jax.jit(jax.vmap(forward))
  rows.append(_row(f"the {steps} forward products in a vmap of 32 trials, per trial", time_ms(
      lambda: forward32(hs32, ws32), number=3, repeats=repeats, sync=sync) / 32, steps * per))
  single = jax.jit(lambda a, b: a @ b)
  big = jax.random.normal(k, (1024, 1024))
  rows.append(_row("one 1024x1024x1024 product (the machine's matmul rate)", time_ms(
      lambda: single(big, big), number=20, repeats=repeats, sync=sync), 2 * 1024 ** 3))
  return rows
