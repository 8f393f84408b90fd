"""The varrnn entry in ``launch/reproduce``: the notes' variational RNN beside its MAP twin.

Quick: the notes' variant (per-example sampling) and the MAP twin for 6 epochs on
the embedded "which came first" pairs, evaluated every 2 epochs. Full: every
variant (notes, minibatch, flipout, bbb, map, bow) for the notes' 30 epochs.
"""
from __future__ import annotations

import os

from experiments.varrnn import compare, config as config_lib

SEED = ("notes 000: Theano/Lasagne variational RNN sentence-pair classifier "
        "(per-example weight samples)")

EMBEDDED = ("embedded pairs, chance 0.167; the notes' own 0.318 is on SemEval pairs, SICK "
            "results in experiments/varrnn/README.md")


def reproduce(out_dir: str, quick: bool = True) -> dict:
  variants = ["notes", "map"] if quick else list(config_lib.VARIANTS)
  res = compare.compare(os.path.join(out_dir, "compare"), variants, epochs=6 if quick else 0,
                        eval_every=2, verbose=False)
  records = []
  for v, r in res["reports"].items():
    for metric, key, check, source in (
        ("balanced test macro-F1", "f1_bal", {"kind": "at_least", "bound": 0.5}, EMBEDDED),
        ("test ECE", "ece", {"kind": "shown", "what": "calibration (the notes report none)"}, "")):
      records.append({"experiment": "varrnn", "variant": f"{v} ({r['predictor']} predictor)",
                      "metric": f"{metric} after {r['epochs']:g} epochs", "value": r[key],
                      "reference": None, "source": source, "check": check})
  return {"records": records, "figures": [res["figure"]] +
          [os.path.join(out_dir, "compare", v, "curves.png") for v in variants[:1]]}
