"""The variational RNN on SICK relatedness (real sentence pairs), setting beside setting.

  python -m experiments.word2vec.english_corpus --data=../shared/data --out=runs/corpus_en
  python -m experiments.word2vec.main --config=experiments/word2vec/config.py:gensim \\
      --config.data.corpus=runs/corpus_en --workdir=runs/word2vec/english
  python -m experiments.varrnn.sick --sick=../shared/data/sick/SICK.txt \\
      --vectors=runs/word2vec/english/vectors.txt --out=runs/varrnn/sick

Data: SICK's TRAIN and TRIAL pairs train, its TEST pairs test (the 1-5 score as 6
classes: ``experiments/varrnn/sentence_pairs.py``); the fixed word vectors are our
word2vec's on the English corpus. Each setting is a config variant plus overrides
(:data:`SETTINGS`) and trains in ``<out>/<setting>``; re-running skips finished
runs. Writes ``<out>/comparison.md`` (balanced macro-F1, accuracy, ECE, NLL per
predictor), ``comparison.png`` and ``reliability.png`` (each setting's headline
predictor on the test set, bins of at least :data:`MIN_BIN` pairs).
"""
from __future__ import annotations

import json
import os

from absl import app, flags
import numpy as np

from experiments.varrnn import compare, config as config_lib, experiment, inputs
from lib.eval import scores
from lib.runtime import cli, plotting, writers
from lib.sweeps import space
from lib.train.state import restore_params

# name -> (variant, overrides): the notes' exact settings first, then what it took to learn.
SETTINGS = {
    "notes": ("notes", {}),
    "map": ("map", {}),
    "notes_match_adam": ("notes", {"model.features": "match", "model.init": "inv_sqrt_fan_in",
                                   "optimizer": {"name": "adam", "lr": 1e-3},
                                   "vi.kl_weight": 1e-3}),
    "flipout_match_adam": ("flipout", {"model.features": "match",
                                       "model.init": "inv_sqrt_fan_in",
                                       "optimizer": {"name": "adam", "lr": 1e-3},
                                       "vi.kl_weight": 1e-3}),
    "map_match_adam": ("map", {"model.features": "match", "optimizer": {"name": "adam", "lr": 1e-3}}),
    # The same with gated encoders (every weight variational, one sample per example).
    "gru_match_adam": ("notes", {"model.cell": "gru", "model.features": "match",
                                 "model.init": "inv_sqrt_fan_in",
                                 "optimizer": {"name": "adam", "lr": 1e-3}, "vi.kl_weight": 1e-3}),
    "lstm_match_adam": ("notes", {"model.cell": "lstm", "model.features": "match",
                                  "model.init": "inv_sqrt_fan_in",
                                  "optimizer": {"name": "adam", "lr": 1e-3}, "vi.kl_weight": 1e-3}),
}


MIN_BIN = 20  # reliability.png leaves out bins of fewer test pairs


def config_for(setting: str, sick: str, vectors: str, common: dict):
  variant, overrides = SETTINGS[setting]
  c = config_lib.get_config(variant)
  return space.apply(c, {"data.format": "sick", "data.path": sick, "data.vectors": vectors,
                          **_flat(overrides), **common})


def _flat(overrides: dict) -> dict:
  out = {}
  for k, v in overrides.items():
    if isinstance(v, dict):
      out.update({f"{k}.{kk}": vv for kk, vv in v.items()})
    else:
      out[k] = v
  return out


def study(out: str, sick: str, vectors: str, settings: list[str], common: dict,
          verbose: bool = True) -> dict:
  configs = {s: config_for(s, sick, vectors, common) for s in settings}
  first = next(iter(configs.values()))
  dataset = inputs.load(first.data, first.model.embeddings, first.model.input_dim)
  reports, curves, calibration = {}, {}, {}
  for s, c in configs.items():
    workdir = os.path.join(out, s)
    reports[s] = experiment.run(c, workdir, verbose=verbose, data=dataset)["report"]
    curves[s] = writers.epoch_curves(workdir, len(dataset.train["y"]) // c.data.batch_size)
    calibration[s] = _reliability(c, workdir, dataset, reports[s]["predictor"])
  figure = plotting.plot_panels(
      [("training objective (negative ELBO; MAP: NLL·N/B + L2)", "per epoch",
        {s: c.get("train/neg_elbo") or c["train/loss"] for s, c in curves.items()}),
       ("balanced test macro-F1 (headline predictor)", "F1",
        {s: c["eval/f1_bal"] for s, c in curves.items()})],
      os.path.join(out, "comparison.png"), title="varrnn on SICK", logy=(True, False))
  plotting.plot_reliability(calibration, os.path.join(out, "reliability.png"),
                            title="SICK test: reliability of each setting's headline predictor")
  with open(os.path.join(out, "settings.json"), "w") as f:
    json.dump({s: SETTINGS[s] for s in settings}, f, indent=2)
  return writers.write_comparison(out, f"varrnn on {dataset.info}", compare.markdown(reports),
                                  reports, figure, verbose)


def _reliability(config, workdir: str, dataset, predictor: str):
  built = experiment.build(config, dataset)
  post = restore_params(built.task, built.config, workdir)[0]
  probs = built.task.evaluators[0].predict(post, dataset.test)[predictor]
  conf, acc, n = scores.reliability(probs, dataset.test["y"], config.eval.ece_bins)
  few = n < MIN_BIN  # a bin of a handful of pairs is noise, not calibration
  return np.where(few, np.nan, conf), np.where(few, np.nan, acc)


if __name__ == "__main__":
  _OUT = flags.DEFINE_string("out", "runs/varrnn/sick", "Output folder.")
  _SICK = flags.DEFINE_string("sick", "../shared/data/sick/SICK.txt", "SICK.txt.")
  _VECTORS = flags.DEFINE_string("vectors", "runs/word2vec/english/vectors.txt",
                                 "word2vec text-format vectors.")
  _SETTINGS = flags.DEFINE_list("settings", list(SETTINGS), f"Of {list(SETTINGS)}.")
  _SET = flags.DEFINE_list("set", [], "key=value overrides for every setting.")

  def main(argv):
    cli.no_extra_args(argv)
    settings = cli.known("settings", _SETTINGS.value, SETTINGS)
    study(_OUT.value, _SICK.value, _VECTORS.value, settings, cli.parse_sets(_SET.value))

  cli.prepare_process()
  app.run(main)
