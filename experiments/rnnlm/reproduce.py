"""The RNN LM's entry in ``launch/reproduce``: the notes' Elman LM on the embedded corpus.

Records the notes' checks (initial loss against log V, loss per word after
training, validation perplexity) and the 10 sampled sentences. The PTB runs
need ``../shared/data/ptb`` and a GPU for the full schedules; their commands
and results are in README.md beside this file.
"""
from __future__ import annotations

import os

from experiments.rnnlm import config as config_lib, experiment

NOTES = "notes 001 (numpy, 100 reddit sentences, 10 epochs)"


def _record(metric, value, ref=None, source=""):
  return {"experiment": "rnnlm", "variant": "notes", "metric": metric, "value": float(value),
          "reference": ref, "source": source}


def reproduce(out_dir: str, quick: bool = True) -> dict:
  c = config_lib.get_config("notes")
  if quick:
    c.trainer.num_epochs = 5
  workdir = os.path.join(out_dir, "notes")
  out = experiment.run(c, workdir, verbose=False)
  r = out["lm"]
  records = [
      _record("log V", r["log_v"], 8.987, NOTES + ", V = 8000"),
      _record("initial loss per word", r["initial_nll"], 8.987425, NOTES),
      _record(f"train loss per word after {c.trainer.num_epochs} epochs", r["final"]["train/nll"],
              5.710718, NOTES),
      _record("valid perplexity", r["final"]["eval/ppl"]),
      _record("sampled sentences >= 7 words, no unknown (of 10)",
              sum(len(s.split()) >= 7 and "UNKNOWN_TOKEN" not in s for s in r["samples"])),
  ]
  with open(os.path.join(out_dir, "samples.md"), "w") as f:
    f.write("\n".join(f"- {s}" for s in r["samples"]) + "\n")
  return {"records": records, "figures": [os.path.join(workdir, "loss_curve.png")]}
