"""Stacked seq2seq encoders: layer by layer against the wavefront order.

The translation model (LSTM 256, dot attention, one-hot inputs) with a unidirectional
encoder of 2 and 4 layers, at the batch shapes of ``attention_step`` (64 pairs, 16
source and 59 target characters, 70 and 90 symbols). RMSprop, teacher forcing,
timed in alternation; ``wavefront_speedup``: the layers order's time over the
wavefront's (``lib.nn.stacks.Order``).
"""
from __future__ import annotations

import jax
import optax

from launch.benchmarks.attention_step import H, V_SRC, V_TGT, _batch
from launch.benchtools import jitted_step, time_alternating_ms
from lib.nn import seq2seq

COLUMNS = ("case", "layers_ms", "wavefront_ms", "wavefront_speedup")
LAYERS = (2, 4)


def step_fn(layers: int, order: str, batch: dict, hidden: int = H):
  """A closure running one jitted RMSprop step of the model."""
  model = seq2seq.Seq2Seq(V_SRC, V_TGT, embed_dim=0, hidden=hidden, attention="dot",
                          encoder_layers=layers, order=order)

  def loss_fn(params, b, rng):
    del rng
    return seq2seq.token_loss(model.apply(params, b), b["tgt_out"], b["tgt_mask"])

  return jitted_step(loss_fn, optax.rmsprop(1e-3, decay=0.9, eps=1e-7),
                     model.init(jax.random.key(0)), batch)


def run(peers=(), repeats: int = 5, layers=LAYERS, hidden: int = H) -> list[dict]:
  del peers
  batch = _batch()
  rows = []
  for n in layers:
    fns = {o: step_fn(n, o, batch, hidden) for o in ("layers", "wavefront")}
    ms = time_alternating_ms(fns, number=5, repeats=repeats, warmup=1,
                             syncs={o: jax.block_until_ready for o in fns})
    rows.append({"case": f"{n}-layer LSTM {hidden} encoder, dot attention",
                 "layers_ms": ms["layers"], "wavefront_ms": ms["wavefront"],
                 "wavefront_speedup": ms["layers"] / ms["wavefront"]})
    print(rows[-1], flush=True)
  return rows
