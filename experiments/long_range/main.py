"""Trains one long-range task with one cell.

  python -m experiments.long_range.main \
      --config=experiments/long_range/config.py:adding_100 --config.model.cell=lru \
      --workdir=runs/long_range/adding_100/lru
"""
from experiments.long_range import experiment
from lib.runtime import cli

if __name__ == "__main__":
  cli.experiment_main(experiment.run, "experiments/long_range/config.py")
