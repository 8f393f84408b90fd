"""The counting experiment's entry in ``launch/reproduce``.

Runs the three optimizers of notes 003 and the three nonlinear cells of notes
002, draws the notes' loss-curve comparison and the cost surface with each
optimizer's path over (w_x, w_rec), and returns one record per result.
"""
from __future__ import annotations

import os

import numpy as np

from experiments.counting import config as config_lib, experiment
from lib.runtime import plotting, writers

SEED = "notes 003: Theano linear RNN counting ones (GD, RMSProp, Rprop); Keras cells"

NOTES = "notes 003 (Theano, 2001 epochs)"
PETER = "Peter's notes (Rprop, 500 it.)"
# (variant, metric) -> (reference value, source)
REFERENCES = {
    ("gd", "cost"): (0.0663, NOTES), ("gd", "w_x"): (1.0597, NOTES), ("gd", "w_rec"): (0.9863, NOTES),
    ("rmsprop", "cost"): (0.0068, NOTES), ("rmsprop", "w_x"): (0.9995, NOTES),
    ("rmsprop", "w_rec"): (0.9993, NOTES),
    ("rprop", "w_x"): (1.0, PETER), ("rprop", "w_rec"): (1.0, PETER),
}


# How each result is judged (launch.verdicts): the notes' weights to 0.01, their costs as
# bounds; the results the notes give no figure for are shown with what they say.
WITHIN = {"kind": "within", "tol": 0.01}
CHECKS = {
    ("gd", "cost"): {"kind": "within", "tol": 0.1, "relative": True},
    ("rmsprop", "cost"): {"kind": "at_most", "bound": 0.0068},
    "test mse": {"kind": "shown", "what": "held-out error on fresh 10-step sequences "
                 "(the notes give no figure)"},
    "test mse, 50 steps": {"kind": "shown", "what": "extrapolation to 50-step sequences after "
                           "training on 10: only w_x = w_rec = 1 counts that far (Rprop, "
                           "RMSProp); bounded cells saturate, as expected"},
    "train mse": {"kind": "shown", "what": "the Keras cells fit the training sequences "
                  "(notes 002 shows the curves only: cells.png)"},
    "cost": {"kind": "shown", "what": "Rprop's final cost (Peter's notes give the weights only)"},
    "seeds": {"kind": "shown", "what": "GD from 32 random starts (the notes show one)"},
}


def _check(variant: str, metric: str, ref) -> dict:
  if (variant, metric) in CHECKS:
    return CHECKS[variant, metric]
  if ref is not None:
    return WITHIN
  return CHECKS["seeds" if metric.startswith("seeds") else metric]


def _record(variant, metric, value, ref=(None, "")):
  return {"experiment": "counting", "variant": variant, "metric": metric,
          "value": float(value), "reference": ref[0], "source": ref[1],
          "check": _check(variant, metric, ref[0])}


def reproduce(out_dir: str, quick: bool = True) -> dict:
  """Returns ``{'records': [...], 'figures': [paths]}``; writes runs under ``out_dir``."""
  records, curves, paths = [], {}, {}
  for variant in config_lib.VARIANTS:
    cfg = config_lib.get_config(variant)
    if quick and variant in config_lib.CELL_VARIANTS:
      cfg.trainer.num_epochs = 1001
    workdir = os.path.join(out_dir, variant)
    summary = experiment.run(cfg, workdir, verbose=False)
    train = writers.read_records(workdir, "train")
    curves[variant] = writers.series(train, "cost")
    if variant in config_lib.OPTIMIZER_VARIANTS:
      paths[variant] = (writers.series(train, "w_x")[1], writers.series(train, "w_rec")[1])
      for metric, value in (("cost", summary["final"]["train/cost"]),
                            ("w_x", summary["extra"]["w_x"]), ("w_rec", summary["extra"]["w_rec"])):
        records.append(_record(variant, metric, value, REFERENCES.get((variant, metric), (None, ""))))
    else:
      records.append(_record(variant, "train mse", summary["final"]["train/mse"]))
    records.append(_record(variant, "test mse", summary["final"]["eval/mse"]))
    records.append(_record(variant, "test mse, 50 steps", summary["final"]["eval/long_mse"]))

  scan = experiment.gd_seed_scan(config_lib.get_config("gd"))
  records.append(_record("gd", "seeds reaching cost < 0.1 (of 32)",
                         int((scan["final_cost"] < 0.1).sum())))
  figures = [
      plotting.plot_curves({v: curves[v] for v in config_lib.OPTIMIZER_VARIANTS},
                           os.path.join(out_dir, "optimizers.png"), logy=True, xlabel="epoch",
                           ylabel="cost (sum of squared errors)",
                           title="Counting ones, linear RNN: GD vs RMSProp vs Rprop"),
      plotting.plot_curves({v: curves[v] for v in config_lib.CELL_VARIANTS},
                           os.path.join(out_dir, "cells.png"), logy=True, xlabel="epoch",
                           ylabel="cost (sum of squared errors)",
                           title="Counting ones, hidden 20 + dense: SimpleRNN / LSTM / GRU"),
      _surface(os.path.join(out_dir, "cost_surface.png"), paths),
  ]
  return {"records": records, "figures": figures}


def _surface(path: str, paths: dict) -> str:
  d = config_lib.get_config().data
  data = experiment.make_data(d.num_samples, d.seq_len, d.seed)
  wx, wrec = np.linspace(-1.5, 2.5, 161), np.linspace(-1.5, 1.5, 161)
  z = experiment.cost_surface(data["x"], data["y"], wx, wrec)
  return plotting.plot_surface(wx, wrec, z, path, paths=paths, mark=(1.0, 1.0),
                               title="Cost over (w_x, w_rec) and the optimizers' paths",
                               xlabel="w_x", ylabel="w_rec")
