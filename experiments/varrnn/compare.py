"""Trains the variational and deterministic variants on one data set, side by side.

  python -m experiments.varrnn.compare --out=runs/varrnn/compare
  python -m experiments.varrnn.compare --variants=notes,map --epochs=10 --out=runs/varrnn/quick

Each variant trains in ``<out>/<variant>`` (re-running resumes or skips finished
runs). Writes ``<out>/comparison.md`` (balanced macro-F1 mean ± std, train F1,
accuracy, ECE and NLL of every variant and predictor), ``results.json`` and
``comparison.png`` (negative ELBO or loss per epoch; balanced test macro-F1 per
evaluation).
"""
from __future__ import annotations

import os

from absl import app, flags

from experiments.varrnn import config as config_lib, inputs, experiment
from lib.runtime import cli, plotting, writers


def compare(out: str, variants: list[str], epochs: int = 0, eval_every: int = 0,
            overrides: dict | None = None, verbose: bool = True) -> dict:
  """Trains ``variants``; returns ``{'reports', 'figure', 'table'}``."""
  configs = {}
  for v in variants:
    c = config_lib.get_config(v)
    if epochs:
      c.trainer.num_epochs = epochs
    if eval_every:
      c.trainer.eval_every_epochs = eval_every
    for key, value in (overrides or {}).items():
      group, field = key.split(".")
      c[group][field] = value
    configs[v] = c
  first = next(iter(configs.values()))
  dataset = inputs.load(first.data, first.model.embeddings, first.model.input_dim)
  reports, curves = {}, {}
  for v, c in configs.items():
    reports[v] = experiment.run(c, os.path.join(out, v), verbose=verbose, data=dataset)["report"]
    spe = len(dataset.train["y"]) // c.data.batch_size
    curves[v] = writers.epoch_curves(os.path.join(out, v), spe)
  figure = plotting.plot_panels(
      [("training objective (negative ELBO; MAP: NLL·N/B + L2)", "per epoch",
        {v: c.get("train/neg_elbo") or c["train/loss"] for v, c in curves.items()}),
       ("balanced test macro-F1 (headline predictor)", "F1",
        {v: c["eval/f1_bal"] for v, c in curves.items()})],
      os.path.join(out, "comparison.png"), title=f"varrnn: {dataset.info.split(':')[0]}",
      logy=(True, False))
  return writers.write_comparison(out, f"varrnn on {dataset.info}", markdown(reports), reports,
                                  figure, verbose)


def markdown(reports: dict[str, dict]) -> str:
  rows = ["| variant | sampling | predictor | balanced test macro-F1 | train macro-F1 | test acc | "
          "ECE | test NLL | train time (s) |", "|---|---|---|---|---|---|---|---|---|"]
  for v, r in reports.items():
    preds = [p for p in experiment.PREDICTORS if f"{p}/f1_bal" in r]
    for p in preds:
      train_f1 = r.get(f"{p}/train_f1")
      rows.append(
          f"| {v} | {r['sampling']} | {p}{' (headline)' if p == r['predictor'] and len(preds) > 1 else ''} "
          f"| {r[f'{p}/f1_bal']:.3f} ± {r[f'{p}/f1_bal_std']:.3f} | "
          f"{'—' if train_f1 is None else f'{train_f1:.3f}'} | {r[f'{p}/acc']:.3f} | "
          f"{r[f'{p}/ece']:.3f} | {r[f'{p}/nll']:.3f} | {r['wall_time_s']:.0f} |")
  return "\n".join(rows)


if __name__ == "__main__":
  _OUT = flags.DEFINE_string("out", "runs/varrnn/compare", "Output folder.")
  _VARIANTS = flags.DEFINE_list("variants", list(config_lib.VARIANTS), "Variants to train.")
  _EPOCHS = flags.DEFINE_integer("epochs", 0, "Epochs (0: each variant's config).")
  _EVAL = flags.DEFINE_integer("eval_every", 0, "Evaluate every this many epochs (0: config).")

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    compare(_OUT.value, _VARIANTS.value, _EPOCHS.value, _EVAL.value)

  cli.prepare_process()
  app.run(main)
