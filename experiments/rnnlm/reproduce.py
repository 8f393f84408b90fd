"""The RNN LM's entry in ``launch/reproduce``: the notes' Elman LM on the embedded corpus.

Records the notes' checks (initial loss against log V, loss per word after
training, validation perplexity) and the 10 sampled sentences. The PTB runs
need ``../shared/data/ptb`` and a GPU for the full schedules; their commands
and results are in README.md beside this file.
"""
from __future__ import annotations

import os

from experiments.rnnlm import config as config_lib, experiment

SEED = "notes 001: numpy Elman RNN language model (reddit comments, V 8,000)"

NOTES = "notes 001 (numpy, 100 reddit sentences, 10 epochs)"


def _record(metric, value, check, ref=None, source=""):
  return {"experiment": "rnnlm", "variant": "notes", "metric": metric, "value": float(value),
          "reference": ref, "source": source, "check": check}


def reproduce(out_dir: str, quick: bool = True) -> dict:
  c = config_lib.get_config("notes")
  if quick:
    c.trainer.num_epochs = 3
  workdir = os.path.join(out_dir, "notes")
  out = experiment.run(c, workdir, verbose=False)
  r = out["lm"]
  epochs = c.trainer.num_epochs
  records = [
      _record("initial loss per word (uniform predictions: log V)", r["initial_nll"],
              {"kind": "within", "tol": 0.01}, r["log_v"],
              "the notes' check: log V of this vocabulary (theirs: 8.987 at V = 8,000)"),
      _record(f"train loss per word after {epochs} epochs", r["final"]["train/nll"],
              {"kind": "at_most", "bound": round(r["log_v"] - 1.0, 3)}, None,
              f"falls more than 1 nat below log V, as in {NOTES}: 8.987 -> 5.711 there"),
      _record("valid perplexity", r["final"]["eval/ppl"],
              {"kind": "shown", "what": "held-out perplexity (the notes report none)"}),
      _record("sampled sentences >= 7 words, no unknown (of 10)",
              sum(len(s.split()) >= 7 and "UNKNOWN_TOKEN" not in s for s in r["samples"]),
              {"kind": "at_least", "bound": 8}, None,
              "the notes print 10 samples of at least 7 words: samples.md"),
  ]
  with open(os.path.join(out_dir, "samples.md"), "w") as f:
    f.write("\n".join(f"- {s}" for s in r["samples"]) + "\n")
  return {"records": records, "figures": [os.path.join(workdir, "loss_curve.png")]}
