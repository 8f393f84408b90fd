"""Trains one seq2seq variant on the addition or date task and prints decodes.

  python -m experiments.seq2seq.main --config=experiments/seq2seq/config.py:peeky \
      --workdir=runs/seq2seq/peeky [--config.data.path=../shared/data/dlfs2/addition.txt]

Writes into the workdir: checkpoints (re-running resumes), metrics.jsonl (train
loss and char accuracy per epoch; held-out loss, exact match and per-character
accuracy per epoch), TensorBoard events, loss_curve.png, summary.json,
report.json, samples.txt and vocab.json.
"""
from experiments.seq2seq import experiment
from lib.runtime import cli

if __name__ == "__main__":
  cli.experiment_main(experiment.run, "experiments/seq2seq/config.py")
