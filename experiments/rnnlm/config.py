"""Word-level RNN language models: notes 001 and Penn Treebank (Zaremba et al. 2014).

Variants (``config.py:<name>``):

  notes       The notes' Elman LM (hidden 100, tanh, no biases, 1/sqrt(n) init), one
              sentence per SGD step (lr 0.005, loss summed over the sentence), truncated
              BPTT of 4 steps, lr halved when the epoch's loss stops falling; trained on
              the embedded corpus (the Python Language Reference prose that ships with
              Python: 2,730 sentences, 51k tokens), vocabulary 2,000 (the corpus has only
              2,776 distinct words, so the notes' 8,000 would leave no unknown words).
                python -m experiments.rnnlm.main --config=experiments/rnnlm/config.py:notes \
                    --workdir=runs/rnnlm/notes
              See README.md beside this file for its runtime and result; prints 10 sampled sentences.
  notes_csv   The same on the notes' reddit comments CSV, vocabulary 8,000:
                --config=experiments/rnnlm/config.py:notes_csv \
                --config.data.path=../shared/data/reddit_partial/reddit-comments-2015-08.csv \
                --config.data.skip_bad_records=True   (that copy is truncated)
  ptb_small   2x200 LSTM, 20 steps, batch 20, 13 epochs, SGD lr 1 halved after epoch 4,
              clip 5, init U(-0.1, 0.1), no dropout. Paper: test ppl 114.5
              (TF tutorial 115.91).
                --config=experiments/rnnlm/config.py:ptb_small --config.data.path=../shared/data/ptb
  ptb_medium  2x650, 35 steps, dropout 0.5, 39 epochs, lr x0.8 after epoch 6, clip 5,
              init 0.05. Paper: 82.7.
  ptb_large   2x1500, 35 steps, dropout 0.65, 55 epochs, lr /1.15 after epoch 14,
              clip 10, init 0.04. Paper: 78.4.
  ptb_small_lru, ptb_small_mingru, ptb_small_rglru
              ptb_small's schedule and budget with 2 layers of LRU (hidden 210), minGRU
              (222) or RG-LRU (218): each within 0.1% of ptb_small's 4,651,600 parameters.
              Test perplexity 137.34 / 131.65 / 117.08, about half an hour each on 2 CPU cores
              (README.md beside this file).
  Add ``--config.model.tie_weights=True`` to tie the softmax to the embedding.

Durations are given in epochs (``trainer.num_epochs``, ``optimizer.decay_start_epochs``,
``optimizer.plateau_every_epochs``, ...) and become steps once the data is loaded
(:mod:`lib.runtime.durations`); the resolved config is saved as ``config.json``.
"""
import ml_collections

from lib.runtime import configs
from lib.train import optim, trainer

# Notes 001's Elman LM as RecurrentLM fields: no biases, U(+-1/sqrt(fan-in)) weights, and
# the embedding row as the cell's input product U x_t.
NOTES_LM = dict(use_bias=False, weight_init="inv_sqrt_fan_in", embedding_is_projection=True)

# Zaremba et al. (2014) / the TensorFlow PTB tutorial.
_PTB = {
    #            hidden steps dropout epochs decay_after decay  clip init
    "ptb_small": (200, 20, 0.0, 13, 4, 0.5, 5.0, 0.1),
    "ptb_medium": (650, 35, 0.5, 39, 6, 0.8, 5.0, 0.05),
    "ptb_large": (1500, 35, 0.65, 55, 14, 1 / 1.15, 10.0, 0.04),
}


def _ptb(hidden, steps, dropout, epochs, decay_after, decay, clip, init) -> dict:
  """A Zaremba et al. row as dotted overrides."""
  return {
      "seed": 0, "data.source": "ptb", "data.vocab_size": 0, "data.mode": "stream",
      "data.batch_size": 20, "data.num_steps": steps, "data.eval_batch_size": 20,
      "model.cell": "lstm", "model.hidden": hidden, "model.layers": 2, "model.dropout": dropout,
      "model.weight_init": f"uniform:{init}", "model.use_bias": True,
      "model.embedding_is_projection": False, "model.truncate": 0,
      "trainer.num_epochs": epochs,
      # TF tutorial: epoch i (0-based) trains at lr * decay ** max(i + 1 - decay_after, 0)
      "optimizer": optim.default_config("sgd", 1.0, clip_norm=clip, schedule="step",
                                        decay_rate=decay, decay_start_epochs=decay_after - 1,
                                        decay_every_epochs=1),
      "generate.num": 0, "trainer.log_every_steps": 200}


# ptb_small's parameter count (4,651,600) with linear recurrences: cell -> hidden size.
PTB_SMALL_LINEAR = {"lru": 210, "mingru": 222, "rglru": 218}

# One dict of dotted overrides per variant, applied to the base config (the notes' LM).
VARIANTS = {
    "notes": {},
    "notes_csv": {"data.source": "csv", "data.vocab_size": 8000},
    **{name: _ptb(*row) for name, row in _PTB.items()},
    **{f"ptb_small_{cell}": {**_ptb(*_PTB["ptb_small"]), "model.cell": cell, "model.hidden": hidden}
       for cell, hidden in PTB_SMALL_LINEAR.items()},
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = configs.start("rnnlm", arg or "notes", VARIANTS)
  c.seed = 10                     # the notes' np.random.seed(10)
  c.data = ml_collections.ConfigDict(dict(
      source="embedded",          # embedded | csv | ptb | tfds
      path="",                    # csv file, or the folder with ptb.{train,valid,test}.txt
      column="body",              # csv column holding the text
      skip_bad_records=False,     # csv: drop a truncated/malformed record instead of failing
      tfds="",                    # tfds: a prepared text dataset (lm1b; WORKSPACE.md, 'TFDS')
      tfds_dir="",                # its data_dir ('' = ~/tensorflow_datasets)
      tfds_split="train",         # read as csv records are; valid_fraction held out of it
      tfds_field="text",
      vocab_size=2000,            # V-1 most frequent words + unknown (0 = every word)
      mode="sentences",           # sentences (padded, notes 001) | stream (PTB windows)
      batch_size=1,
      shuffle_seed=10,            # sentence order; -1: follow `seed` (fixed: a sweep over seeds vmaps)
      num_steps=20,               # stream: window length (truncation of BPTT)
      max_len=64,                 # sentences: longer ones are cut
      pad_multiple=8,             # sentences: padded lengths are multiples of this
      valid_fraction=0.1,         # embedded/csv: held-out sentences
      split_seed=0,
      eval_batch_size=64,         # sentences: eval batch; stream: valid windows' batch
      test_batch_size=1,          # stream: final test pass (1 = one unbroken stream)
  ))
  c.model = ml_collections.ConfigDict(dict(  # lib.nn.lm.RecurrentLM's fields
      cell="elman", hidden=100, layers=1, dropout=0.0, tie_weights=False, truncate=4, unroll=1,
      dtype="float32", scan="auto", order="auto",  # order: the stack's (lib.nn.stacks.Order)
      **NOTES_LM))  # cell: any lib.nn.cells name
  c.loss_normalize = "sequences"  # gradient of the sum over time, averaged over the batch
  c.optimizer = optim.default_config("sgd", 0.005, plateau_factor=0.5, plateau_patience=1,
                                     plateau_every_epochs=1)  # the notes: every epoch
  c.generate = ml_collections.ConfigDict(dict(
      num=10, min_len=7, max_len=40, temperature=1.0, seed=0))
  c.trainer = trainer.default_config(num_epochs=20, eval_every_epochs=1, log_every_steps=100,
                                     checkpoint_every_epochs=1, flush_every=50)
  return configs.finish(c, VARIANTS)
