"""Where a dense cell takes its input product: hoisted out of the scan (one product for
all steps, the scan's own backward pass) or in each step (autodiff), the one
training step of ``rnn_step`` (one layer, MSE on every output, SGD) at its three shapes,
timed in alternation, with Flax's cell beside them. ``ratio``: the projection's width
over the input's, the quantity ``lib.nn.recurrence.IN_STEP_RATIO`` thresholds;
``in_step_speedup``: the hoisted step's time over the in-step one's.
"""
from __future__ import annotations

import jax

from launch.benchmarks import flax_rnn
from launch.benchmarks.rnn_step import SHAPES, choose_unroll, rnnlab_step
from launch.benchtools import time_alternating_ms
from lib.nn import cells, recurrence

COLUMNS = ("cell", "batch", "steps", "input", "hidden", "ratio", "hoisted_ms", "in_step_ms",
           "in_step_speedup", "auto", "flax_ms")
KINDS = ("lstm", "gru", "elman")


def run(peers=("flax",), repeats: int = 5, shapes=SHAPES, kinds=KINDS) -> list[dict]:
  rows = []
  for kind in kinds:
    for B, T, D, H in shapes:
      fns = {w: rnnlab_step(kind, B, T, D, H, choose_unroll(T), w) for w in ("hoisted", "in_step")}
      if "flax" in peers and kind in flax_rnn.FLAX_CELLS:
        fns["flax"] = flax_rnn.train_step(kind, B, T, D, H, choose_unroll(T))
      ms = time_alternating_ms(fns, number=20, repeats=repeats,
                               syncs={k: jax.block_until_ready for k in fns})
      cell = cells.make(kind, H)
      rows.append({"cell": kind, "batch": B, "steps": T, "input": D, "hidden": H,
                   "ratio": cell.proj_width / D, "hoisted_ms": ms["hoisted"],
                   "in_step_ms": ms["in_step"], "in_step_speedup": ms["hoisted"] / ms["in_step"],
                   "auto": "in_step" if recurrence.in_step(cell, D) else "hoisted",
                   "flax_ms": ms.get("flax")})
      print(rows[-1], flush=True)
  return rows
