"""Character-level translation (notes 002; the Keras ``lstm_seq2seq`` example).

Variants (``config.py:<variant>``):

  lstm           the notes' first model: one-hot characters, LSTM 256 encoder whose
                 (h, c) start the LSTM 256 decoder, teacher forcing, RMSprop
                 (lr 1e-3, rho 0.9), batch 64, the last 20% of the pairs for validation
                 (Keras' ``validation_split=0.2``: unshuffled)
  bidirectional  the notes' second model: forward and backward LSTM 256 encoders,
                 states concatenated into a 512-wide decoder
  attention      bidirectional + additive attention over the encoder outputs

The embedded default is 10,000 generated pairs, English number words to Japanese
numerals (``experiments/translation/numbers.py``). Any Anki/Tatoeba file by path:

  python -m experiments.translation.main --config=experiments/translation/config.py:lstm \
      --workdir=runs/translation/lstm
  python -m experiments.translation.main --config=experiments/translation/config.py:bidirectional \
      --config.data.path=jpn.txt --config.data.max_pairs=5000 --config.trainer.num_epochs=50 \
      --workdir=runs/translation/jpn_bi
  # or a prepared TFDS translation dataset (array_record; WORKSPACE.md, 'TFDS'):
  python -m experiments.translation.main --config=experiments/translation/config.py:attention \
      --config.data.tfds=ted_hrlr_translate/pt_to_en --config.data.tfds_fields=pt,en \
      --config.data.tfds_dir=$DATA/tfds --workdir=runs/translation/ted_pt_en

Result of ``lstm`` on the embedded default (20 epochs): validation chrF 81.2, exact match
0.71, per-character accuracy 0.94 (greedy). It trained in 714 s on the 2-core CPU while
other jobs shared the cores. Curves and more: README.md beside this file.
"""
import ml_collections

from lib.runtime import configs
from lib.train import optim, trainer

# One dict of dotted overrides per variant, applied to the base config (the notes' first model).
VARIANTS = {
    "lstm": {},
    "bidirectional": {"model.bidirectional": True},
    "attention": {"model.bidirectional": True, "model.attention": "additive"},
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = configs.start("translation", arg or "lstm", VARIANTS)
  c.seed = 0
  c.data = ml_collections.ConfigDict(dict(
      path="",                # an Anki/Tatoeba file: source<TAB>target[<TAB>attribution]
      shuffle_seed=0,         # minibatch order; -1: follow `seed` (fixed: a sweep over seeds vmaps)
      tfds="",                # a prepared TFDS translation dataset instead (WORKSPACE.md, 'TFDS')
      tfds_dir="",            # its data_dir ('' = ~/tensorflow_datasets)
      tfds_split="train",     # the split read; data.valid is held out of it
      tfds_fields="en,fr",    # source language field, target language field
      max_pairs=0,            # read at most this many pairs (0 = all; the notes: 5,000)
      skip_bad_lines=False,   # malformed lines: error naming the line, or skip and count
      num=10_000,             # generated pairs (embedded default)
      gen_seed=0,
      valid=0.2,              # held out: a fraction (rounded down) or a count
      split_seed=-1,          # -1: the last lines, unshuffled (Keras); else a shuffle seed
      batch_size=64,
      eval_batch_size=500,
  ))
  c.model = ml_collections.ConfigDict(dict(
      cell="lstm", embed_dim=0, hidden=256, shared_embedding=False, reverse_input=False,
      peeky=False, attention="none", attention_dim=0, bidirectional=False, unroll=1,
      encoder_layers=1, order="auto",  # order: the encoder stack's (lib.nn.stacks.Order)
      dtype="float32", scan="auto"))  # cell: any lib.nn.cells name; dtype bfloat16: mixed precision
  c.optimizer = optim.default_config("rmsprop", 1e-3, decay=0.9, eps=1e-7)
  c.decoding = ml_collections.ConfigDict(dict(
      beam=1,                 # 1: greedy; k > 1: beam search of width k (batched, jitted)
      length_penalty=0.0,     # beam: rank by log-prob / length ** this (0: the plain sum)
  ))
  c.num_samples = 10
  c.trainer = trainer.default_config(num_epochs=20, eval_every_epochs=1, log_every_epochs=1,
                                     checkpoint_every_epochs=1, flush_every=50)
  return configs.finish(c, VARIANTS)
