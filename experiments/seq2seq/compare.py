"""Trains several seq2seq variants on one data set and compares them (notes 002's figure).

  python -m experiments.seq2seq.compare --out=runs/seq2seq/addition
  python -m experiments.seq2seq.compare --out=runs/seq2seq/addition_file \
      --path=../shared/data/dlfs2/addition.txt
  python -m experiments.seq2seq.compare --task=date --variants=attention --out=runs/seq2seq/date

Each variant trains in ``<out>/<variant>`` (re-running resumes or skips finished
runs). Writes ``<out>/comparison.png`` (train loss and held-out exact match per
epoch, one line per variant), ``comparison.md`` and ``results.json``.
"""
from __future__ import annotations

import os

from absl import app, flags

from experiments.seq2seq import config as config_lib, experiment
from lib.runtime import cli, plotting, writers

def compare(out: str, task: str, variants: list[str], path: str = "", epochs: int = 0,
            num: int = 0, verbose: bool = True) -> dict:
  """Trains ``variants`` on one data set; returns ``{'reports', 'figure', 'table'}``."""
  configs = {}
  for v in variants:
    c = config_lib.get_config(f"{task}_{v}")
    c.data.path = path
    if epochs:
      c.trainer.num_epochs = epochs
    if num:
      c.data.num = num
    configs[v] = c
  dataset = experiment.load(next(iter(configs.values())).data)  # one data set for all
  reports, curves = {}, {}
  for v, c in configs.items():
    result = experiment.run(c, os.path.join(out, v), verbose=verbose, data=dataset)
    reports[v] = result["report"]
    spe = len(dataset.train["src"]) // c.data.batch_size
    curves[v] = writers.epoch_curves(os.path.join(out, v), spe)
  source = path or f"generated {task} ({len(dataset.train['src']) + len(dataset.valid['src'])})"
  figure = plotting.plot_panels(
      [("train loss per symbol", "loss", {v: c["train/loss"] for v, c in curves.items()}),
       ("held-out exact match", "accuracy", {v: c["eval/exact"] for v, c in curves.items()})],
      os.path.join(out, "comparison.png"), title=f"seq2seq {task}: {source}", logy=(True, False))
  rows = ["| variant | params | epochs | held-out exact match | per-character | loss per symbol | train time (s) |",
          "|---|---|---|---|---|---|---|"]
  rows += [f"| {v} | {r['params']} | {r['epochs']} | {r['exact']:.4f} | {r['greedy_char_acc']:.4f} "
           f"| {r['loss']:.4f} | {r['wall_time_s']:.0f} |" for v, r in reports.items()]
  return writers.write_comparison(out, f"seq2seq {task} on {source}", "\n".join(rows), reports,
                                  figure, verbose)


def _define_flags():
  """Flags exist only when this file is the program (``launch.reproduce`` imports it)."""
  return dict(
      out=flags.DEFINE_string("out", "runs/seq2seq/addition", "Output folder."),
      task=flags.DEFINE_enum("task", "addition", config_lib.TASKS, "Which task."),
      variants=flags.DEFINE_list("variants", list(config_lib.MODELS), "Model variants to train."),
      path=flags.DEFINE_string("path", "", "A question_answer file (default: generated data)."),
      epochs=flags.DEFINE_integer("epochs", 0, "Epochs (0: the config's)."),
      num=flags.DEFINE_integer("num", 0, "Generated questions (0: the config's 50,000)."))


if __name__ == "__main__":
  _FLAGS = _define_flags()

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    compare(**{k: f.value for k, f in _FLAGS.items()})

  cli.prepare_process()
  app.run(main)
