"""word2vec skip-gram (notes 002's TF tutorial; gensim's defaults as the bar).

Command:
  python -m experiments.word2vec.main --config=experiments/word2vec/config.py:gensim \
      --workdir=runs/word2vec/gensim \
      [--config.data.corpus=../shared/data/ptb/ptb.train.txt \
       --config.data.analogies=../shared/data/analogy/questions-words.txt]
Variants (``config.py:<name>``):
  embedded (default) the gensim settings for the embedded corpus: 40 epochs,
           1024-pair minibatches; about 5 s of training, neighbours such as
           string -> formatted, bytes; function -> body, coroutine, def.
  gensim   skip-gram, negative sampling (5 negatives estimated from
           16 unigram^0.75 samples shared by each group of 256 pairs), dim 100,
           window 5 (dynamic), sample 1e-4, min_count 5, 5 epochs, SGD 0.025
           falling linearly to 1e-4, sparse row updates, 4096-pair minibatches.
           PTB train: about 9 s for 5 epochs (gensim, 2 workers: about 8 s)
           and 1.5-1.9% on questions-words, like gensim (README.md beside this file).
  notes    the TF tutorial the notes trace: 50,000-word vocabulary with UNK,
           dim 128, batch 128, window 1 both sides (num_skips 2), NCE with 64
           log-uniform samples drawn unique and shared by the batch, mean over
           the batch, SGD lr 1.0, the tutorial's initialisation.
  softmax  the exact softmax over the vocabulary (a check for small
           vocabularies; dense gradients, Adam).
Embedded default corpus: the Python Language Reference prose that ships with
Python (51,000 words, 975 words reach min_count 5).
Minibatches sum the gradients of their pairs, so a word that recurs many times
in one minibatch takes a large step: keep minibatches small for tiny
vocabularies (tests use 32 pairs for 20 words).
"""
import ml_collections

from lib.runtime import configs
from lib.train import optim, trainer

# One dict of dotted overrides per variant, applied to the base config (gensim's settings).
VARIANTS = {
    # gensim's settings for a corpus 17x smaller than PTB: more passes, smaller
    # minibatches (5 epochs leave every vector pointing the same way, in gensim too).
    "embedded": {"trainer.num_epochs": 40, "train.minibatch": 1024},
    "gensim": {},
    "notes": {
        "data.min_count": 1, "data.max_vocab": 50000, "data.unknown": "UNK", "data.window": 1,
        "data.dynamic_window": False, "data.cross_sentences": True, "data.sample": 0.0,
        "model.dim": 128, "model.loss": "nce", "model.sampler": "log_uniform",
        "model.num_sampled": 64, "model.group_size": 128, "model.unique": True,
        "model.init": "notes", "train.minibatch": 128, "train.minibatches_per_step": 64,
        "train.reduce": "mean", "optimizer": optim.default_config("sgd", 1.0)},
    "softmax": {
        "model.loss": "softmax", "train.minibatch": 256, "train.minibatches_per_step": 1,
        "train.sparse": False, "train.reduce": "mean",
        "optimizer": optim.default_config("adam", 3e-3)},
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = configs.start("word2vec", arg or "embedded", VARIANTS)
  c.seed = 1
  c.data = ml_collections.ConfigDict(dict(
      corpus="",            # '' = embedded; a file or a directory of files
      shuffle_seed=1,       # pair order, subsampling, windows; -1: follow `seed` (fixed: seeds vmap)
      tfds="",              # a prepared TFDS text dataset instead (lm1b; WORKSPACE.md, 'TFDS')
      tfds_dir="",          # its data_dir ('' = ~/tensorflow_datasets)
      tfds_split="train",
      tfds_field="text",    # each record's text, read in data.format
      format="lines",       # 'lines': one sentence a line, tokens split on spaces (PTB,
                            #   w2v_corpus); 'text': raw prose, lib.data.text's tokenizer
      lower=True,
      min_count=5,
      max_vocab=0,          # 0 = no cap
      unknown="",           # '' = drop rare words (gensim); else map them to this token
      window=5,
      dynamic_window=True,
      cross_sentences=False,
      sample=1e-4,
      analogies="",         # questions-words.txt format; evaluated every epoch and at the end
      restrict_vocab=300000,
      probes="the,year,market,company,stock,new,function,class,list,string",
  ))
  c.model = ml_collections.ConfigDict(dict(
      dim=100, loss="neg", sampler="unigram", num_sampled=16, negatives=5, group_size=256,
      unique=False, power=0.75, init="word2vec"))
  c.train = ml_collections.ConfigDict(dict(
      minibatch=4096,           # pairs per SGD update
      minibatches_per_step=16,  # scanned inside one jitted step
      sparse=True,              # row-wise SGD (needs optimizer 'sgd'); False: any optax optimizer
      reduce="sum"))
  c.optimizer = optim.default_config("sgd", 0.025, schedule="linear",
                                     end_lr_fraction=0.0001 / 0.025)
  c.trainer = trainer.default_config(num_epochs=5,  # whole passes: the stream draws each anew
                                     log_every_steps=1, eval_every_steps=0,
                                     checkpoint_every_steps=50, flush_every=50,
                                     progress_every_s=5.0)
  return configs.finish(c, VARIANTS)
