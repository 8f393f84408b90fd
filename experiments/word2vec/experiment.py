"""Corpus, vocabulary, pair stream and task glue of the word2vec experiment."""
from __future__ import annotations

import json
import os
import time

import ml_collections
import numpy as np

from lib import corpora, data as data_lib, skipgram, text, trainer, word2vec, word_eval, word_vectors

VECTORS_FILE = "vectors.txt"


def read_sentences(d: ml_collections.ConfigDict) -> list[list[str]]:
  """Token lists: ``d.corpus`` (a file, or every file of a directory) or the embedded prose."""
  if not d.corpus:
    return text.tokenize_sentences(corpora.embedded_text(), lower=d.lower)
  paths = ([os.path.join(d.corpus, f) for f in sorted(os.listdir(d.corpus))]
           if os.path.isdir(d.corpus) else [d.corpus])
  if not paths or not all(os.path.isfile(p) for p in paths):
    raise FileNotFoundError(f"No corpus file at {d.corpus!r} (a text file or a directory of them).")
  out = []
  for p in paths:
    with open(p, "rb") as f:
      raw = f.read()
    try:
      body = raw.decode("utf-8")
    except UnicodeDecodeError as e:  # e.start: a byte offset into the whole file
      line = raw[:e.start].count(b"\n") + 1
      raise corpora.DataError(f"{p}:{line}: not UTF-8 text ({e.reason}).") from None
    if d.format == "lines":
      out.extend(l.lower().split() if d.lower else l.split() for l in body.splitlines())
    elif d.format == "text":
      out.extend(text.tokenize_sentences(body, lower=d.lower))
    else:
      raise ValueError(f"data.format must be 'lines' or 'text', got {d.format!r}.")
  out = [s for s in out if s]
  if not out:
    raise corpora.DataError(f"{d.corpus}: no words.")
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
      raise corpora.DataError(f"{d.corpus or 'embedded corpus'}: fewer than 2 words reach "
                              f"min_count={d.min_count}.")
    ids, sent = skipgram.encode(sentences, self.vocab)
    t = config.train
    self.stream = skipgram.PairStream(
        ids, sent, self.vocab.counts, window=d.window, dynamic=d.dynamic_window, sample=d.sample,
        epochs=config.num_epochs, pairs_per_step=t.minibatch * t.minibatches_per_step,
        seed=config.seed, cross_sentences=d.cross_sentences)
    self.analogies = word_eval.read_analogies(d.analogies) if d.analogies else None
    self.last_analogies: dict = {}  # the latest evaluation's full result (per section)


def _check_sparse(config) -> None:
  o = config.optimizer
  if o.name != "sgd" or o.clip_norm or o.clip_value or o.weight_decay or o.plateau_factor:
    raise ValueError("train.sparse=True is plain SGD on the touched rows: it needs "
                     "optimizer.name='sgd' without clipping, weight decay or plateau; "
                     "set --config.train.sparse=False for other optimizers.")


def build_task(config: ml_collections.ConfigDict, data: Data) -> trainer.Task:
  spec = spec_of(config, len(data.vocab))
  noise = None if spec.loss == "softmax" else word2vec.Noise(spec, data.vocab.counts)
  t = config.train
  make_step = None
  if t.sparse:
    _check_sparse(config)
    if spec.loss == "softmax":
      raise ValueError("the softmax loss has no sparse path; set --config.train.sparse=False.")
    make_step = word2vec.make_sparse_step(spec, noise, t.minibatch)
  elif t.minibatches_per_step != 1:
    raise ValueError("the dense path (train.sparse=False) takes one minibatch per step: "
                     "set --config.train.minibatches_per_step=1.")

  def loss_fn(params, batch, rng):
    return word2vec.loss(spec, noise, params, batch, rng)

  def eval_fn(params):
    if data.analogies is None:
      return {}
    r = word_eval.evaluate_analogies(data.vocab.words, np.asarray(params["in"]), data.analogies,
                                     config.data.restrict_vocab)
    data.last_analogies = r
    return {"analogy_accuracy": r["accuracy"], "analogy_questions": r["total"]}

  words_per_step = data.raw_words * config.num_epochs / data.stream.num_steps
  return trainer.Task(name=f"word2vec/{config.variant}",
                      init_params=lambda key: word2vec.init_params(spec, key),
                      loss_fn=loss_fn, eval_fn=eval_fn,
                      train_batch=data_lib.Prefetch(data.stream.batch, data.stream.num_steps),
                      make_step=make_step, rate_unit=("words", words_per_step))


def resolve(config: ml_collections.ConfigDict, data: Data) -> ml_collections.ConfigDict:
  """The trainer's step count from the pair stream (subsampling makes epochs
  differ slightly: ``data.stream.epoch_steps``). Analogies are evaluated at the
  end, and every ``trainer.eval_every`` steps when set."""
  c = ml_collections.ConfigDict(config.to_dict())
  c.trainer.num_steps = data.stream.num_steps
  c.lock()
  return c


def export(workdir: str, data: Data, params, probes: str, k: int = 8) -> dict:
  """Writes ``vectors.txt`` (word2vec text format, gensim-loadable) and
  ``neighbours.txt`` (the notes' cosine neighbours of the probe words)."""
  vectors = np.asarray(params["in"])
  word_vectors.write(os.path.join(workdir, VECTORS_FILE), data.vocab.words, vectors)
  unit = word_eval.normalize(vectors)
  probe_ids = [data.vocab.index[w] for w in probes.split(",") if w in data.vocab.index]
  lines, out = [], {}
  if probe_ids:
    ids, sims = word_eval.nearest(unit, probe_ids, k)
    for q, row, sim in zip(probe_ids, ids, sims):
      word = data.vocab.words[q]
      out[word] = [(data.vocab.words[i], round(float(s), 3)) for i, s in zip(row, sim)]
      lines.append(f"{word}: " + ", ".join(f"{w} ({s:.2f})" for w, s in out[word]))
  with open(os.path.join(workdir, "neighbours.txt"), "w") as f:
    f.write("\n".join(lines) + "\n")
  return out


def run(config: ml_collections.ConfigDict, workdir: str, verbose: bool = True) -> dict:
  """Trains, exports the vectors, evaluates analogies; returns the summary plus
  ``words_per_s`` (epochs x corpus words / training wall time, gensim's measure)."""
  data = Data(config)
  config = resolve(config, data)
  task = build_task(config, data)
  t0 = time.perf_counter()
  summary = trainer.train(task, config, workdir)
  train_s = time.perf_counter() - t0
  params = trainer.restore_params(task, config, workdir)[0]  # train() raised unless it completed
  neighbours = export(workdir, data, params, config.data.probes)
  report = {"vocab_size": len(data.vocab), "corpus_words": data.raw_words,
            "pairs_per_epoch": data.stream.epoch_pairs, "train_s": round(train_s, 3),
            "words_per_s": config.num_epochs * data.raw_words / train_s, "neighbours": neighbours}
  if data.analogies is not None:
    report["analogies"] = data.last_analogies  # the trainer's final evaluation
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
