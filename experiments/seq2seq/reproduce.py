"""The seq2seq entry in ``launch/reproduce``: the notes' addition variants compared.

Quick: the book's best model (peeky) for 2 epochs on the generated 50,000 questions,
a smoke test. Full: all variants for the book's 25 epochs with the notes' ranking,
and the date task with attention for 10.
"""
from __future__ import annotations

import os

from experiments.seq2seq import compare

SEED = "notes 002: Keras seq2seq addition (DLFS2 ch. 7-8: reversed input, peeky)"

KERAS = "Keras addition example: 99% (reversed, 100 epochs)"
FULL = ("python -m experiments.seq2seq.compare --out=runs/seq2seq/addition",
        "7 variants x 25 epochs; peeky alone 103 s on 2 cores, 99.6% exact match: "
        "experiments/seq2seq/README.md")
RANKED = ("peeky", "reversed", "baseline")  # the notes' ranking by exact match


def _ranking(reports: dict) -> str:
  order = sorted(RANKED, key=lambda v: -reports[v]["exact"])
  return " > ".join(order)


def reproduce(out_dir: str, quick: bool = True) -> dict:
  """Quick: peeky for 2 epochs, a smoke test (at 3 epochs every variant is still below
  1% exact match). Full: every variant for the book's 25 epochs, their ranking, and dates."""
  variants = (["peeky"] if quick else
              ["baseline", "reversed", "shared", "peeky", "attention", "additive", "bidirectional"])
  res = compare.compare(os.path.join(out_dir, "addition"), "addition", variants,
                        epochs=2 if quick else 0, verbose=False)
  smoke = {"kind": "smoke", "full": FULL[0], "time": FULL[1]}
  records = []
  for v, r in res["reports"].items():
    peeky_full = v == "peeky" and not quick
    records.append({"experiment": "seq2seq", "variant": f"addition/{v}",
                    "metric": f"held-out exact match after {r['epochs']:g} epochs",
                    "value": r["exact"], "reference": 0.99 if peeky_full else None,
                    "source": KERAS if peeky_full else "",
                    "check": ({"kind": "at_least", "bound": 0.99} if peeky_full else
                              smoke if quick else
                              {"kind": "shown", "what": "the variants side by side: comparison.png"})})
  figures = [res["figure"]]
  if not quick:
    records.append({"experiment": "seq2seq", "variant": "addition/" + ", ".join(RANKED),
                    "metric": "ranking by held-out exact match", "value": _ranking(res["reports"]),
                    "reference": " > ".join(RANKED), "source": "notes 002 / DLFS2 ch. 7",
                    "check": {"kind": "equal"}})
    date = compare.compare(os.path.join(out_dir, "date"), "date", ["attention"], verbose=False)
    r = date["reports"]["attention"]
    records.append({"experiment": "seq2seq", "variant": "date/attention",
                    "metric": f"held-out exact match after {r['epochs']:g} epochs",
                    "value": r["exact"], "reference": 0.99, "source": "DLFS2 ch. 8 (about 100%)",
                    "check": {"kind": "at_least", "bound": 0.99}})
    figures.append(date["figure"])
  return {"records": records, "figures": figures}
