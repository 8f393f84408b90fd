"""rnnlab's LSTM inside a Flax NNX model against ``flax.nnx.RNN(OptimizedLSTMCell)``.

The same training step for both (forward, MSE on every step's output, backward,
SGD through ``nnx.Optimizer``), as one ``jax.jit`` over the model's split state
(``nnx.split`` / ``nnx.merge``, the functional form that costs no Python per
call), on the shapes of ``rnn_step``. The two are timed in alternation.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax
from flax import nnx as fnnx

from launch.benchmarks.rnn_step import SHAPES, _data, choose_unroll
from launch.benchtools import time_pair_ms
from lib.nn import cells, nnx

COLUMNS = ("batch", "steps", "input", "hidden", "unroll", "rnnlab_ms", "flax_ms",
           "speedup_vs_flax")
NUMBER = 20


FLAX_CELLS = {"lstm": fnnx.OptimizedLSTMCell, "gru": fnnx.GRUCell}


def _model(kind: str, D: int, H: int, unroll: int):
  """``rnnlab``: rnnlab's LSTM as an NNX module; ``lstm`` / ``gru``: Flax's own cell."""
  if kind == "rnnlab":
    return nnx.RNN(cells.LSTM(hidden=H), D, unroll=unroll, rngs=fnnx.Rngs(0))
  return fnnx.RNN(FLAX_CELLS[kind](D, H, rngs=fnnx.Rngs(0)), unroll=unroll)


def train_step(kind: str, B: int, T: int, D: int, H: int, unroll: int):
  """A zero-argument callable running one jitted step (the state carried between calls)."""
  x, y = map(jnp.asarray, _data(B, T, D, H))
  model = _model(kind, D, H, unroll)
  opt = fnnx.Optimizer(model, optax.sgd(0.01), wrt=fnnx.Param)
  graphdef, state = fnnx.split((model, opt))

  @functools.partial(jax.jit, donate_argnums=0)
  def step(state, x, y):
    m, o = fnnx.merge(graphdef, state)
    loss, grads = fnnx.value_and_grad(lambda m: jnp.mean((m(x) - y) ** 2))(m)
    o.update(m, grads)
    return fnnx.state((m, o)), loss

  holder = [state]

  def run():
    holder[0], loss = step(holder[0], x, y)
    return loss

  return run


def run(peers=(), repeats: int = 7, shapes=SHAPES) -> list[dict]:
  del peers  # the peer is Flax itself, always installed
  rows = []
  for B, T, D, H in shapes:
    unroll = choose_unroll(T)
    ours, theirs = time_pair_ms(train_step("rnnlab", B, T, D, H, unroll),
                                train_step("lstm", B, T, D, H, unroll), number=NUMBER,
                                repeats=repeats, sync_a=jax.block_until_ready,
                                sync_b=jax.block_until_ready)
    rows.append({"batch": B, "steps": T, "input": D, "hidden": H, "unroll": unroll,
                 "rnnlab_ms": ours, "flax_ms": theirs, "speedup_vs_flax": theirs / ours})
    print(rows[-1], flush=True)
  return rows
