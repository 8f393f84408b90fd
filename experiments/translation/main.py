"""Trains a character-level translation model (notes 002) and prints decodes, curves and chrF.

  python -m experiments.translation.main --config=experiments/translation/config.py:lstm \
      --workdir=runs/translation/lstm [--config.data.path=jpn.txt]

Writes into the workdir: checkpoints (re-running resumes), metrics.jsonl (train
loss and per-character accuracy per epoch; validation loss, per-character
accuracy, exact match and chrF per epoch), TensorBoard events, curves.png (train
vs validation), loss_curve.png, summary.json, report.json, samples.txt and the
two vocabularies.
"""
from experiments.translation import experiment
from lib.runtime import cli

if __name__ == "__main__":
  cli.experiment_main(experiment.run, "experiments/translation/config.py")
