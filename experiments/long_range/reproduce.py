"""The long-range experiment's entry in ``launch/reproduce``.

Counting far past training (notes 003): the notes' linear cell (``counting_notes``)
against an LSTM, both trained on 10 steps and tested on 10, 50 and 1,000; and the
adding problem at T = 100 with the cell and lr the long-range table picked. Draws the
MSE against the sequence length, and the adding run's curves.
"""
from __future__ import annotations

import os

from experiments.long_range import config as config_lib, experiment
from lib.runtime import plotting, writers
from lib.sweeps import space

SEED = "notes 003: only the linear cell counts far past its training lengths; the adding problem"

LENGTHS = (10, 50, 1000)
# The LSTM of the table's counting row (its lr picked there), trained on the same task.
LSTM = {"model.cell": "lstm", "optimizer.lr": 0.001}
# The adding problem at T = 100: RG-LRU, its size and lr from the table (README.md beside
# this file), where both seeds solved it.
ADDING = {"model.cell": "rglru", "model.hidden": 56, "optimizer.lr": 0.03}
ALWAYS_ONE = 1 / 6  # the MSE of predicting 1 (the target's mean) on the adding problem
QUIET = {"trainer.tensorboard": False}


def _run(variant: str, overrides: dict, workdir: str) -> dict:
  config = space.apply(config_lib.get_config(variant), {**QUIET, **overrides})
  return experiment.run(config, workdir, verbose=False)["final"]


def _record(variant: str, metric: str, value: float, check: dict) -> dict:
  return {"experiment": "long_range", "variant": variant, "metric": metric,
          "value": float(value), "reference": None, "source": "", "check": check}


def reproduce(out_dir: str, quick: bool = True) -> dict:
  """Returns ``{'records': [...], 'figures': [paths]}``; writes runs under ``out_dir``."""
  del quick  # the whole entry takes well under a minute
  lengths = {"data.test_lens": LENGTHS, "data.test_size": 64}
  notes = _run("counting_notes", lengths, os.path.join(out_dir, "counting_notes"))
  lstm = _run("counting", {**lengths, **LSTM}, os.path.join(out_dir, "counting_lstm"))
  adding_dir = os.path.join(out_dir, "adding_100")
  adding = _run("adding_100", ADDING, adding_dir)
  records = [
      _record("counting_notes", "test mse, 1,000 steps (linear cell, w = 1)",
              notes["eval/mse@1000"], {"kind": "at_most", "bound": 0.01}),
      _record("counting", "test mse, 1,000 steps (LSTM)", lstm["eval/mse@1000"],
              {"kind": "at_least", "bound": 1.0}),
      _record("counting", "test mse, 10 steps (LSTM)", lstm["eval/mse@10"],
              {"kind": "shown", "what": "the LSTM fits the training length; the bounded "
               "cell saturates far past it (the 1,000-step row)"}),
      _record("adding_100", f"test mse ({ADDING['model.cell']}, 600 steps)",
              adding["eval/mse@100"], {"kind": "at_most", "bound": 0.01}),
  ]
  curves = {"linear cell (notes 003)": notes, "LSTM": lstm}
  figures = [
      plotting.plot_curves({name: (list(LENGTHS), [f[f"eval/mse@{T}"] for T in LENGTHS])
                            for name, f in curves.items()},
                           os.path.join(out_dir, "counting_lengths.png"), logy=True,
                           xlabel="sequence length (trained on 10)", ylabel="test MSE",
                           title="Counting ones far past training"),
      plotting.plot_curves({"train MSE": writers.series(writers.read_records(adding_dir, "train"), "mse"),
                            "test MSE": writers.series(writers.read_records(adding_dir, "eval"), "mse@100"),
                            "predicting 1": ([0, 600], [ALWAYS_ONE, ALWAYS_ONE])},
                           os.path.join(out_dir, "adding_100.png"), logy=True, xlabel="step",
                           ylabel="MSE", title=f"Adding problem, T = 100 ({ADDING['model.cell']})"),
  ]
  return {"records": records, "figures": figures}
