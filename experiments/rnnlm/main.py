"""Trains a word-level RNN language model (notes 001 / PTB), then samples sentences.

  python -m experiments.rnnlm.main --config=experiments/rnnlm/config.py:notes \
      --workdir=runs/rnnlm/notes [--config.optimizer.lr=0.01 ...]

Writes into the workdir: checkpoints (re-running resumes), metrics.jsonl,
TensorBoard events, loss_curve.png, summary.json, lm_report.json,
params.npz, vocab.json and samples.txt.
"""
from experiments.rnnlm import experiment
from lib.runtime import cli

if __name__ == "__main__":
  cli.experiment_main(experiment.run, "experiments/rnnlm/config.py")
