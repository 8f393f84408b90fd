"""The translation entry in ``launch/reproduce``: the notes' LSTM on the embedded pair set.

Quick: 3 epochs of the one-directional model. Full: both of the notes' models
(one-directional and bidirectional encoder) for the config's 20 epochs.
"""
from __future__ import annotations

import os

from experiments.translation import config as config_lib, experiment


def reproduce(out_dir: str, quick: bool = True) -> dict:
  records, figures = [], []
  for variant in ["lstm"] if quick else ["lstm", "bidirectional"]:
    c = config_lib.get_config(variant)
    if quick:
      c.trainer.num_epochs = 3
    r = experiment.run(c, os.path.join(out_dir, variant), verbose=False)["report"]
    for metric, key in (("validation chrF", "chrf"), ("validation exact match", "exact"),
                        ("validation per-character accuracy (greedy)", "greedy_char_acc")):
      records.append({"experiment": "translation", "variant": f"numbers/{variant}",
                      "metric": f"{metric} after {c.trainer.num_epochs} epochs", "value": r[key],
                      "reference": None, "source": ""})
    figures.append(r["figure"])
  return {"records": records, "figures": figures}
