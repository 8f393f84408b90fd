"""Trains the counting experiment.

  python -m experiments.counting.main \
      --config=experiments/counting/config.py:rmsprop --workdir=runs/counting/rmsprop \
      [--config.optimizer.lr=3e-3 ...]
"""
from experiments.counting import experiment
from lib.runtime import cli

if __name__ == "__main__":
  cli.experiment_main(experiment.run, "experiments/counting/config.py")
