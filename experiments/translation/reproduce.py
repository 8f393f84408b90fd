"""The translation entry in ``launch/reproduce``: the notes' LSTM on the embedded pair set.

Quick: 1 epoch of the one-directional model, a smoke test (chrF passes 80 after
about 20 epochs). Full: both of the notes' models
(one-directional and bidirectional encoder) for the config's 20 epochs.
"""
from __future__ import annotations

import os

from experiments.translation import config as config_lib, experiment

SEED = "notes 002: Keras character-level lstm_seq2seq translation"


FULL = ("python -m experiments.translation.main --config=experiments/translation/config.py:lstm "
        "--workdir=runs/translation/lstm", "20 epochs, 714 s on 2 cores: chrF 81.2, exact match "
        "0.71 (experiments/translation/README.md)")


def reproduce(out_dir: str, quick: bool = True) -> dict:
  records, figures = [], []
  check = ({"kind": "smoke", "full": FULL[0], "time": FULL[1]} if quick else
           {"kind": "shown", "what": "the notes show decodes, no score: samples.txt, curves.png"})
  for variant in ["lstm"] if quick else ["lstm", "bidirectional"]:
    c = config_lib.get_config(variant)
    if quick:
      c.trainer.num_epochs = 1
    r = experiment.run(c, os.path.join(out_dir, variant), verbose=False)["report"]
    for metric, key in (("validation chrF", "chrf"), ("validation exact match", "exact"),
                        ("validation per-character accuracy (greedy)", "greedy_char_acc")):
      records.append({"experiment": "translation", "variant": f"numbers/{variant}",
                      "metric": f"{metric} after {c.trainer.num_epochs:g} epochs", "value": r[key],
                      "reference": None, "source": "", "check": check})
    figures.append(r["figure"])
  return {"records": records, "figures": figures}
