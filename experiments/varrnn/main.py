"""Trains one variant of the variational-RNN pair classifier (notes 000).

  python -m experiments.varrnn.main --config=experiments/varrnn/config.py:notes \
      --workdir=runs/varrnn/notes [--config.vi.sampling=flipout ...]

Writes into the workdir: checkpoints (re-running resumes), metrics.jsonl (the
negative ELBO, NLL, KL, sigma and accuracy per epoch; balanced-draw test
macro-F1, train macro-F1, ECE and NLL per evaluation and predictor), TensorBoard
events, loss_curve.png, curves.png (the notes' log as a figure), summary.json
and report.json.
"""
from experiments.varrnn import experiment
from lib.runtime import cli

if __name__ == "__main__":
  cli.experiment_main(experiment.run, "experiments/varrnn/config.py")
