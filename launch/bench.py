"""Benchmark harness: runs a named benchmark, prints a table, times peers side by side.

  python -m launch.bench rnn_step [--peers=torch] [--repeats=7] [--out=runs/bench]

A benchmark is a module in ``launch/benchmarks`` with ``run(peers, repeats) ->
list[dict]`` (one row per measurement; or another function, named as
``module:function``) and ``COLUMNS``. Peers (e.g. PyTorch) are
optional extras: a missing one is reported and skipped, never required.
"""
from __future__ import annotations

import importlib
import json
import os
import sys

from absl import app, flags

from launch.benchmarks import sweep_trials
from launch.benchtools import machine, table
from lib.runtime import cli

BENCHMARKS = {
    "rnn_step": "launch.benchmarks.rnn_step",
    "lm_step": "launch.benchmarks.lm_step",
    "ptb_cells": "launch.benchmarks.lm_step:run_ptb_cells",
    "ptb_orders": "launch.benchmarks.lm_step:run_ptb_orders",
    "varrnn_step": "launch.benchmarks.varrnn_step",
    "attention_step": "launch.benchmarks.attention_step",
    "encoder_orders": "launch.benchmarks.encoder_step",
    "input_product": "launch.benchmarks.input_product",
    "flax_rnn": "launch.benchmarks.flax_rnn",
    "trial_step": "launch.benchmarks.trial_step",
    "step_floor": "launch.benchmarks.step_floor",
    "word2vec": "launch.benchmarks.word2vec_gensim",
    "word2vec_english": "launch.benchmarks.word2vec_gensim:run_english",
    "scans": "launch.benchmarks.scans",
    "scans_unroll": "launch.benchmarks.scans:run_unroll",
    "scans_chunk": "launch.benchmarks.scans:run_chunk",
    "scans_mlstm": "launch.benchmarks.scans:run_mlstm",
    "cell_step": "launch.benchmarks.scans:run_cells",
    **{f"sweep_{n}": f"launch.benchmarks.sweep_trials:run_{n}"
       for n in (*sweep_trials.SWEEPS, "halving")},
}

# Benchmarks that time an entry point with its own allocator default (its main.py).
HOST_MALLOC = {"word2vec": "system", "word2vec_english": "system"}

_PEERS = flags.DEFINE_list("peers", ["torch", "flax"], "Peer libraries to time beside rnnlab.")
_REPEATS = flags.DEFINE_integer("repeats", 7, "Timed repeats (the median is reported).")
_OUT = flags.DEFINE_string("out", "runs/bench", "Folder for <name>.json and <name>.md.")


def main(argv):
  if len(argv) != 2 or argv[1] not in BENCHMARKS:
    raise app.UsageError(f"Usage: python -m launch.bench NAME; NAME in {sorted(BENCHMARKS)}")
  name = argv[1]
  module, _, fn = BENCHMARKS[name].partition(":")  # "module[:function]", default run
  mod = importlib.import_module(module)
  rows = getattr(mod, fn or "run")(peers=_PEERS.value, repeats=_REPEATS.value)
  md = table(rows, getattr(mod, "COLUMNS_BY_FUNCTION", {}).get(fn, mod.COLUMNS))
  os.makedirs(_OUT.value, exist_ok=True)
  with open(os.path.join(_OUT.value, f"{name}.json"), "w") as f:
    json.dump({"benchmark": name, "machine": machine(), "rows": rows}, f, indent=2)
  with open(os.path.join(_OUT.value, f"{name}.md"), "w") as f:
    f.write(f"{machine()}\n\n{md}\n")
  print(machine())
  print(md)


if __name__ == "__main__":
  # Before JAX starts its threads; the peers run in this process and get the same allocator.
  _name = next((a for a in sys.argv[1:] if not a.startswith("-")), "")
  cli.prepare_process(HOST_MALLOC.get(_name, "auto"))
  app.run(main)
