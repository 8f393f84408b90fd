"""The varrnn entry in ``launch/reproduce``: the notes' variational RNN beside its MAP twin.

Quick: the notes' variant (per-example sampling) and the MAP twin for 10 epochs on
the embedded "which came first" pairs, evaluated every 2 epochs. Full: every
variant (notes, minibatch, flipout, bbb, map, bow) for the notes' 30 epochs.
"""
from __future__ import annotations

import os

from experiments.varrnn import compare, config as config_lib

NOTES = "notes 000 (SemEval pairs, 30 epochs; different data)"


def reproduce(out_dir: str, quick: bool = True) -> dict:
  variants = ["notes", "map"] if quick else list(config_lib.VARIANTS)
  res = compare.compare(os.path.join(out_dir, "compare"), variants, epochs=10 if quick else 0,
                        eval_every=2, verbose=False)
  records = []
  for v, r in res["reports"].items():
    for metric, key in (("balanced test macro-F1", "f1_bal"), ("test ECE", "ece")):
      ref = 0.318 if (v, key) == ("notes", "f1_bal") else None
      records.append({"experiment": "varrnn", "variant": f"{v} ({r['predictor']} predictor)",
                      "metric": f"{metric} after {r['epochs']} epochs", "value": r[key],
                      "reference": ref, "source": NOTES if ref is not None else ""})
  return {"records": records, "figures": [res["figure"]] +
          [os.path.join(out_dir, "compare", v, "curves.png") for v in variants[:1]]}
