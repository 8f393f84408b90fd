"""Trains word vectors (skip-gram) and writes them in the word2vec text format.

  python -m experiments.word2vec.main --config=experiments/word2vec/config.py:gensim \
      --workdir=runs/word2vec/gensim [--config.data.corpus=../shared/data/ptb/ptb.train.txt ...]

Writes into the workdir: checkpoints (re-running resumes), metrics.jsonl,
TensorBoard events, loss_curve.png, summary.json, vectors.txt (loads in
gensim's ``KeyedVectors.load_word2vec_format``), neighbours.txt and
word2vec_report.json (words/s, analogy accuracy per section).
"""
from experiments.word2vec import experiment
from lib.runtime import cli

if __name__ == "__main__":
  # glibc's own allocator: the one-arena setting of lib.runtime.hostmem makes XLA's
  # parallel compilation and the sparse step about 10% slower here (it speeds up the LMs).
  cli.experiment_main(experiment.run, "experiments/word2vec/config.py", host_malloc="system")
