"""Trains the counting experiment.

  python -m experiments.counting.main \
      --config=experiments/counting/config.py:rmsprop --workdir=runs/counting/rmsprop \
      [--config.optimizer.lr=3e-3 ...]
"""
from absl import flags
from ml_collections import config_flags

from experiments.counting import experiment
from lib import cli

_CONFIG = config_flags.DEFINE_config_file(
    "config", "experiments/counting/config.py", "Config file (``path:variant``).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory; re-running resumes.", required=True)


def main(argv):
  cli.no_extra_args(argv)
  cli.run_reporting_errors(lambda: experiment.run(_CONFIG.value, _WORKDIR.value))


if __name__ == "__main__":
  cli.run(main)
