"""The word2vec experiment's entry in ``launch/reproduce`` (embedded corpus only).

Trains the embedded preset (gensim's settings), the notes' TF-tutorial NCE
and the exact softmax on the Python reference prose, and reports each run's
final loss, throughput and its cosine neighbours of a few probe words. The PTB
comparison with gensim is a benchmark (``python -m launch.bench word2vec``),
since it needs ``../shared/data``.
"""
from __future__ import annotations

import os

from experiments.word2vec import config as config_lib, experiment
from lib.runtime import plotting, writers

SEED = "notes 002: TF word2vec_basic (NCE); gensim's skip-gram as the bar"

PROBES = ("string", "function", "class", "list")


# What each variant's neighbours show on the 51k-word embedded corpus.
NEIGHBOURS = {
    "embedded": "related words first (gensim's settings, 40 epochs)",
    "notes": "the TF tutorial's recipe (window 1, NCE, lr 1.0) after a few epochs: mostly "
             "unrelated, as on PTB (0.08% analogies there: README.md beside the experiment)",
    "softmax": "the exact softmax after a few epochs: a check of the sampled losses, "
               "not a recipe for vectors",
}
PTB = ("python -m launch.bench word2vec --peers=gensim", "PTB train: 1.01x "
       "gensim's words/s, analogies 1.77% against 1.80% (launch/benchmarks/README.md)")


def _record(variant, metric, value, check, source=""):
  return {"experiment": "word2vec", "variant": variant, "metric": metric, "value": value,
          "reference": None, "source": source, "check": check}


def reproduce(out_dir: str, quick: bool = True) -> dict:
  records, curves = [], {}
  epochs = {"embedded": 40, "notes": 3 if quick else 20, "softmax": 3 if quick else 20}
  for variant, n in epochs.items():
    c = config_lib.get_config(variant)
    c.trainer.num_epochs = n
    workdir = os.path.join(out_dir, variant)
    s = experiment.run(c, workdir, verbose=False)
    rep = s["report"]
    records.append(_record(variant, "final train loss per pair", round(s["final"]["train/loss"], 4),
                           {"kind": "shown", "what": "the objective falls: losses.png"}))
    records.append(_record(variant, "words/s (training)", round(rep["words_per_s"]),
                           {"kind": "smoke", "full": PTB[0], "time": PTB[1]}))
    for w in PROBES:
      if w in rep["neighbours"]:
        near = ", ".join(x for x, _ in rep["neighbours"][w][:4])
        records.append(_record(variant, f"neighbours of '{w}'", near,
                               {"kind": "shown", "what": NEIGHBOURS[variant]},
                               "cosine, lib.eval.word_eval"))
    curves[variant] = writers.series(writers.read_records(workdir, "train"), "loss")
  fig = plotting.plot_curves(curves, os.path.join(out_dir, "losses.png"), xlabel="step",
                             ylabel="loss per pair",
                             title="word2vec on the embedded corpus: train loss per pair")
  return {"records": records, "figures": [fig]}
