"""Variational-RNN training step: per-example (vmap), per-minibatch and flipout sampling
against the deterministic (MAP) step of the same network (notes 000's pair classifier).

One step = two masked sentences through the shared Elman encoder, softmax read-out,
the objective (NLL * N/B, + closed-form KL for the variational ones), gradient and
adagrad update, jitted as the trainer runs it. Sizes: the notes' (batch 25, input 50,
hidden 50, length 40) and a larger one (batch 256, input 50, hidden 256, length 40).
Memory: XLA's compiled temporary buffers for the step (``memory_analysis``), the
same measure on every backend.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from experiments.varrnn import config as config_lib, experiment
from experiments.varrnn.model import PairRNN
from launch.benchtools import time_ms
from lib.train import optim
from lib.train.state import TrainState
from lib.train.step import make_train_step

SIZES = ((25, 50, 50, 40), (256, 50, 256, 40))  # batch, input, hidden, length
MODES = (("deterministic", "map"), ("per-example (vmap)", "notes"), ("per-minibatch", "minibatch"),
         ("flipout", "flipout"))
COLUMNS = ("sampling", "batch", "input", "hidden", "length", "unroll", "ms_per_step",
           "vs_deterministic", "temp_MB", "examples_per_s")
NUMBER = 20
VOCAB = 2000


def _batch(B, T, seed=0):
  rng = np.random.default_rng(seed)
  lengths = rng.integers(T // 2, T + 1, size=(2, B))
  mask = (np.arange(T)[None, None] < lengths[..., None]).astype(np.float32)
  return {"ids1": rng.integers(0, VOCAB, (B, T)).astype(np.int32), "mask1": mask[0],
          "ids2": rng.integers(0, VOCAB, (B, T)).astype(np.int32), "mask2": mask[1],
          "y": rng.integers(0, 6, B).astype(np.int32), "kl_weight": np.float32(1.0)}


def step_fn(variant: str, B: int, D: int, H: int, T: int, unroll: int = 1):
  """``(run, compiled)``: one training step as a closure, and its compiled executable."""
  c = config_lib.get_config(variant)
  model = PairRNN(input_dim=D, hidden=H, unroll=unroll, init="inv_sqrt_fan_in")
  vectors = jnp.asarray(np.random.default_rng(1).standard_normal((VOCAB, D)).astype(np.float32))
  loss = experiment.loss_fn(model, vectors, c, num_train=10 * B)
  tx, _ = optim.make_optimizer(c.optimizer, 1000)
  params = experiment.init_fn(model, c)(jax.random.key(0))
  state = TrainState(step=jnp.zeros((), jnp.int32), params=params,
                             opt_state=tx.init(params))
  step = jax.jit(make_train_step(loss, tx), donate_argnums=0)
  batch = jax.device_put(_batch(B, T))
  key = jax.random.key(2)
  compiled = step.lower(state, batch, key).compile()
  holder = [state]

  def run():
    holder[0], m = step(holder[0], batch, jax.random.fold_in(key, 0))
    return m["loss"].total

  return run, compiled


def temp_mb(compiled) -> float | None:
  try:
    return compiled.memory_analysis().temp_size_in_bytes / 2 ** 20
  except Exception:  # some backends do not report it
    return None


def interleaved_ms(fns: list, number: int, repeats: int) -> list[float]:
  """Median ms per call of each fn, timed in turns (A B C D A B C D ...) so that a slow
  stretch of the machine hits every mode alike, not the one running at the time."""
  for fn in fns:
    for _ in range(2):
      jax.block_until_ready(fn())
  samples = [[] for _ in fns]
  for _ in range(repeats):
    for i, fn in enumerate(fns):
      samples[i].append(time_ms(fn, number=number, repeats=1, warmup=0, sync=jax.block_until_ready))
  return [float(np.median(s)) for s in samples]


def run(peers=(), repeats: int = 7, sizes=SIZES, unrolls=(1, 4)) -> list[dict]:
  rows = []
  for B, D, H, T in sizes:
    for unroll in unrolls:
      built = [step_fn(variant, B, D, H, T, unroll) for _, variant in MODES]
      times = interleaved_ms([fn for fn, _ in built], NUMBER if B < 100 else 5, repeats)
      for (label, _), (_, compiled), ms in zip(MODES, built, times):
        rows.append({"sampling": label, "batch": B, "input": D, "hidden": H, "length": T,
                     "unroll": unroll, "ms_per_step": ms, "vs_deterministic": ms / times[0],
                     "temp_MB": temp_mb(compiled), "examples_per_s": B / ms * 1e3})
  return rows
