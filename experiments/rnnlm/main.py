"""Trains a word-level RNN language model (notes 001 / PTB), then samples sentences.

  python -m experiments.rnnlm.main --config=experiments/rnnlm/config.py:notes \
      --workdir=runs/rnnlm/notes [--config.optimizer.lr=0.01 ...]

Writes into the workdir: checkpoints (re-running resumes), metrics.jsonl,
TensorBoard events, loss_curve.png, summary.json, lm_report.json,
params.npz, vocab.json and samples.txt.
"""
from absl import flags
from ml_collections import config_flags

from experiments.rnnlm import experiment
from lib import cli

_CONFIG = config_flags.DEFINE_config_file(
    "config", "experiments/rnnlm/config.py", "Config file (``path:variant``).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory; re-running resumes.", required=True)


def main(argv):
  cli.no_extra_args(argv)
  cli.run_reporting_errors(lambda: experiment.run(_CONFIG.value, _WORKDIR.value))


if __name__ == "__main__":
  cli.run(main)
