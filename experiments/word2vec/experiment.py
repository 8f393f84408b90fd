"""Corpus, vocabulary, pair stream and task glue of the word2vec experiment."""
from __future__ import annotations

import json
import os
import time

import jax
import ml_collections
import numpy as np

from experiments.word2vec import skipgram
from lib.data import batching as data_lib, corpora, text, tfds_source, word_vectors
from lib.errors import ConfigError, DataError
from lib.eval import word_eval
from lib.nn import word2vec
from lib.runtime import configs, durations
from lib.sweeps import tunable
from lib.train import sparse_sgd, trainer
from lib.train.state import restore_params
from lib.train.task import Built, Task

VECTORS_FILE = "vectors.txt"


def read_sentences(d: ml_collections.ConfigDict) -> list[list[str]]:
  """Token lists: ``d.corpus`` (a file, or every file of a directory), a TFDS text
  dataset (``d.tfds``; each record read as a file would be) or the embedded prose."""
  if d.tfds:
    bodies = [r[0] for r in tfds_source.read_fields(d.tfds, d.tfds_split, [d.tfds_field],
                                                    d.tfds_dir)]
  elif not d.corpus:
    return text.tokenize_sentences(corpora.embedded_text(), lower=d.lower)
  else:
    paths = ([os.path.join(d.corpus, f) for f in sorted(os.listdir(d.corpus))]
             if os.path.isdir(d.corpus) else [d.corpus])
    if not paths or not all(os.path.isfile(p) for p in paths):
      raise FileNotFoundError(f"No corpus file at {d.corpus!r} (a text file or a directory of them).")
    bodies = [corpora.read_utf8(p) for p in paths]
  out = []
  for body in bodies:
    if d.format == "lines":
      out.extend(l.lower().split() if d.lower else l.split() for l in body.splitlines())
    elif d.format == "text":
      out.extend(text.tokenize_sentences(body, lower=d.lower))
    else:
      raise ValueError(f"data.format must be 'lines' or 'text', got {d.format!r}.")
  out = [s for s in out if s]
  if not out:
    raise DataError(f"{d.corpus or d.tfds}: no words.")
  return out


def spec_of(config: ml_collections.ConfigDict, vocab_size: int) -> word2vec.Spec:
  m = config.model
  return word2vec.Spec(vocab_size=vocab_size, dim=m.dim, loss=m.loss, sampler=m.sampler,
                       num_sampled=m.num_sampled, negatives=m.negatives,
                       group_size=min(m.group_size, config.train.minibatch), unique=m.unique,
                       power=m.power, reduce=config.train.reduce, init=m.init)


class Data:
  """What a run needs from its corpus."""

  def __init__(self, config: ml_collections.ConfigDict):
    d = config.data
    sentences = read_sentences(d)
    self.raw_words = sum(len(s) for s in sentences)
    self.vocab = skipgram.count_words(sentences, min_count=d.min_count,
                                      max_size=d.max_vocab or None, unknown=d.unknown or None)
    if len(self.vocab) < 2:
      raise DataError(f"{d.corpus or 'embedded corpus'}: fewer than 2 words reach "
                              f"min_count={d.min_count}.")
    ids, sent = skipgram.encode(sentences, self.vocab)
    t = config.train
    self.stream = skipgram.PairStream(
        ids, sent, self.vocab.counts, window=d.window, dynamic=d.dynamic_window, sample=d.sample,
        epochs=whole_epochs(config), pairs_per_step=t.minibatch * t.minibatches_per_step,
        seed=data_lib.order_seed(config), cross_sentences=d.cross_sentences)
    if not self.stream.epoch_pairs[0]:
      raise DataError(f"{d.corpus or 'embedded corpus'}: its {self.raw_words} words give no "
                      f"(center, context) pair once rare words are dropped and frequent ones "
                      f"subsampled (data.min_count={d.min_count}, data.sample={d.sample}); "
                      "expected a larger corpus.")
    self.analogies = word_eval.read_analogies(d.analogies) if d.analogies else None


def whole_epochs(config: ml_collections.ConfigDict) -> int:
  """``trainer.num_epochs`` as a whole number: the stream subsamples each pass anew."""
  n = config.trainer.num_epochs
  if n is None:
    raise ConfigError("word2vec runs whole passes over its pair stream: give "
                      "trainer.num_epochs (a positive whole number), not num_steps or "
                      "num_examples.")
  if n < 1 or n != int(n):
    raise ConfigError(f"trainer.num_epochs={n}: word2vec runs whole passes over its pair "
                      "stream; expected a positive whole number.")
  return int(n)


class Analogies:
  """questions-words accuracy of the input vectors (3CosAdd, ``restrict_vocab``).
  :meth:`evaluate` returns the full result (per section); :meth:`run` its headline."""

  def __init__(self, data: Data, restrict_vocab: int):
    self.words, self.questions, self.restrict_vocab = data.vocab.tokens, data.analogies, restrict_vocab

  def evaluate(self, params) -> dict:
    return word_eval.evaluate_analogies(self.words, np.asarray(params["in"]), self.questions,
                                        self.restrict_vocab)

  def run(self, params):
    r = self.evaluate(params)
    yield "analogy_accuracy", r["accuracy"]
    yield "analogy_questions", r["total"]


def _check_sparse(config) -> None:
  o = config.optimizer
  if o.name != "sgd" or o.clip_norm or o.clip_value or o.weight_decay or o.plateau_factor:
    raise ValueError("train.sparse=True is plain SGD on the touched rows: it needs "
                     "optimizer.name='sgd' without clipping, weight decay or plateau; "
                     "set --config.train.sparse=False for other optimizers.")


# Values that would make a run meaningless, refused before anything starts.
CONFIG_RULES = dict(
    positive=("data.min_count", "data.window", "model.dim", "model.num_sampled",
              "model.negatives", "model.group_size", "train.minibatch",
              "train.minibatches_per_step"),
    nonnegative=("data.max_vocab", "data.sample", "data.restrict_vocab"),
    choices={"data.format": ("lines", "text"), "train.reduce": ("sum", "mean"),
             "model.loss": ("neg", "nce", "softmax"), "model.sampler": ("unigram", "log_uniform"),
             "model.init": ("word2vec", "notes")})


# Sweep keys (lib.sweeps.tunable): the loss reads word2vec's k (the weight of the
# negative samples) as a traced value.
TUNABLE = ("model.negatives",)
STRUCTURAL = ("model.dim", "model.loss", "model.sampler", "model.num_sampled",
              "model.group_size", "model.unique", "model.init", "train.minibatch",
              "train.minibatches_per_step", "train.sparse", "train.reduce", "data.min_count",
              "data.max_vocab", "data.window", "data.sample", "data.shuffle_seed")


def build(config: ml_collections.ConfigDict, data: Data | None = None) -> Built:
  """The skip-gram task; ``data``: a :class:`Data` of this config (default: read it).
  Analogies are evaluated at the end, and every ``trainer.eval_every_*`` when set."""
  configs.check(config, **CONFIG_RULES)
  data = data or Data(config)
  # Subsampling makes epochs differ slightly in length: the stream knows the total.
  epochs = len(data.stream.epoch_pairs)
  config = durations.resolve(config, max(1, data.stream.num_steps // epochs),
                             examples_per_step=config.train.minibatch * config.train.minibatches_per_step,
                             num_steps=data.stream.num_steps)
  spec = spec_of(config, len(data.vocab))
  noise = None if spec.loss == "softmax" else word2vec.Noise(spec, data.vocab.counts)
  t = config.train
  make_step = None
  if t.sparse:
    _check_sparse(config)
    if spec.loss == "softmax":
      raise ValueError("the softmax loss has no sparse path; set --config.train.sparse=False.")
    make_step = sparse_sgd.make_sparse_step(spec, noise, t.minibatch)
  elif t.minibatches_per_step != 1:
    raise ValueError("the dense path (train.sparse=False) takes one minibatch per step: "
                     "set --config.train.minibatches_per_step=1.")

  def loss_fn(params, batch, rng, hp):
    return word2vec.loss(spec, noise, params, batch, rng, hp["model.negatives"])

  words_per_step = data.raw_words * epochs / data.stream.num_steps
  task = Task(name=f"word2vec/{config.variant}",
              init_params=jax.jit(lambda key: word2vec.init_params(spec, key)),  # 1 compile, not 8
              loss_fn=loss_fn,
              evaluators=(Analogies(data, config.data.restrict_vocab),) if data.analogies else (),
              train_batch=data_lib.Prefetch(data.stream.batch, data.stream.num_steps),
              make_step=make_step, rate_unit=("words", words_per_step),
              hparams=tunable.hparams(config, TUNABLE),
              compiler_options=sparse_sgd.step_compiler_options() if make_step else {})
  return Built(task=task, config=config, model=spec, data=data)


def export(workdir: str, data: Data, params, probes: str, k: int = 8) -> dict:
  """Writes ``vectors.txt`` (word2vec text format, gensim-loadable) and
  ``neighbours.txt`` (the notes' cosine neighbours of the probe words)."""
  vectors = np.asarray(params["in"])
  word_vectors.write(os.path.join(workdir, VECTORS_FILE), data.vocab.tokens, vectors)
  unit = word_eval.normalize(vectors)
  probe_ids = [data.vocab.index[w] for w in probes.split(",") if w in data.vocab.index]
  lines, out = [], {}
  if probe_ids:
    ids, sims = word_eval.nearest(unit, probe_ids, k)
    for q, row, sim in zip(probe_ids, ids, sims):
      word = data.vocab.tokens[q]
      out[word] = [(data.vocab.tokens[i], round(float(s), 3)) for i, s in zip(row, sim)]
      lines.append(f"{word}: " + ", ".join(f"{w} ({s:.2f})" for w, s in out[word]))
  with open(os.path.join(workdir, "neighbours.txt"), "w") as f:
    f.write("\n".join(lines) + "\n")
  return out


def run(config: ml_collections.ConfigDict, workdir: str, *, data: Data | None = None,
        verbose: bool = True) -> dict:
  """Trains, exports the vectors, evaluates analogies; returns the summary plus
  ``words_per_s`` (epochs x corpus words / training wall time, gensim's measure)."""
  built = build(config, data)
  task, config, data = built.task, built.config, built.data
  t0 = time.perf_counter()
  summary = trainer.fit(task, config, workdir)
  train_s = time.perf_counter() - t0
  params = restore_params(task, config, workdir)[0]  # train() raised unless it completed
  neighbours = export(workdir, data, params, config.data.probes)
  report = {"vocab_size": len(data.vocab), "corpus_words": data.raw_words,
            "pairs_per_epoch": data.stream.epoch_pairs, "train_s": round(train_s, 3),
            "words_per_s": len(data.stream.epoch_pairs) * data.raw_words / train_s, "neighbours": neighbours}
  if task.evaluators:
    report["analogies"] = task.evaluators[0].evaluate(params)
  with open(os.path.join(workdir, "word2vec_report.json"), "w") as f:
    json.dump(report, f, indent=2)
  summary["report"] = report
  if verbose:
    print(f"{summary['experiment']}: {summary['status']} in {train_s:.1f} s, "
          f"{report['words_per_s']:,.0f} words/s, vocabulary {len(data.vocab)}")
    if "analogies" in report:
      a = report["analogies"]
      print(f"analogy accuracy {a['accuracy']:.4f} ({a['correct']}/{a['total']})")
    with open(os.path.join(workdir, "neighbours.txt")) as f:
      print(f.read(), end="")
  return summary
