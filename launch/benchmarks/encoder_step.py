"""Stacked seq2seq encoders: layer by layer against the wavefront order.

The translation model (LSTM 256, dot attention, one-hot inputs) with a unidirectional
encoder of 2 and 4 layers, at the batch shapes of ``attention_step`` (64 pairs, 16
source and 59 target characters, 70 and 90 symbols). RMSprop, teacher forcing,
timed in alternation; ``wavefront_speedup``: the layers order's time over the
wavefront's (``lib.nn.stacks.Order``).
"""
from __future__ import annotations

import jax

from launch.benchmarks.attention_step import H, _batch, step_fn
from launch.benchtools import time_alternating_ms

COLUMNS = ("case", "layers_ms", "wavefront_ms", "wavefront_speedup")
LAYERS = (2, 4)


def run(peers=(), repeats: int = 5, layers=LAYERS, hidden: int = H) -> list[dict]:
  del peers
  batch = _batch()
  rows = []
  for n in layers:
    fns = {o: step_fn("dot", batch, bidirectional=False, hidden=hidden, encoder_layers=n,
                      order=o) for o in ("layers", "wavefront")}
    ms = time_alternating_ms(fns, number=5, repeats=repeats, warmup=1,
                             syncs={o: jax.block_until_ready for o in fns})
    rows.append({"case": f"{n}-layer LSTM {hidden} encoder, dot attention",
                 "layers_ms": ms["layers"], "wavefront_ms": ms["wavefront"],
                 "wavefront_speedup": ms["layers"] / ms["wavefront"]})
    print(rows[-1], flush=True)
  return rows
