"""The seq2seq entry in ``launch/reproduce``: the notes' addition variants compared.

Quick: four variants (the notes' three and the book's peeky) for 3 epochs on the
generated 50,000 questions. Full: all variants for the book's 25 epochs, and the
date task with attention for 10.
"""
from __future__ import annotations

import os

from experiments.seq2seq import compare

KERAS = "Keras addition example: 99% (reversed, 100 epochs)"


def reproduce(out_dir: str, quick: bool = True) -> dict:
  variants = (["baseline", "reversed", "shared", "peeky"] if quick else
              ["baseline", "reversed", "shared", "peeky", "attention", "additive", "bidirectional"])
  res = compare.compare(os.path.join(out_dir, "addition"), "addition", variants,
                        epochs=3 if quick else 0, verbose=False)
  records = [{"experiment": "seq2seq", "variant": f"addition/{v}",
              "metric": f"held-out exact match after {r['epochs']} epochs", "value": r["exact"],
              "reference": 0.99 if v == "peeky" and not quick else None,
              "source": KERAS if v == "peeky" and not quick else ""}
             for v, r in res["reports"].items()]
  figures = [res["figure"]]
  if not quick:
    date = compare.compare(os.path.join(out_dir, "date"), "date", ["attention"], verbose=False)
    r = date["reports"]["attention"]
    records.append({"experiment": "seq2seq", "variant": "date/attention",
                    "metric": f"held-out exact match after {r['epochs']} epochs", "value": r["exact"],
                    "reference": None, "source": ""})
    figures.append(date["figure"])
  return {"records": records, "figures": figures}
