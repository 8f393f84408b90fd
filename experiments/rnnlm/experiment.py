"""Data, model and task glue of the RNN language-model experiment (notes 001, PTB)."""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import os


from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lib.data import batching, corpora, sequences, text, tfds_source
from lib.data.vocab import Vocab
from lib.eval import generation
from lib.nn import cells, lm, stacks
from lib.runtime import configs, durations
from lib.sweeps import tunable
from lib.train import checkpoint, trainer
from lib.train.state import init_state, restore_params
from lib.train.task import Built, Task

PTB_EOS = "<eos>"
PTB_UNK = "<unk>"


@dataclasses.dataclass
class Corpus:
  vocab: Vocab
  splits: dict[str, list[np.ndarray]]   # sentences as id arrays, or one stream array each
  stream: bool


# -- data ---------------------------------------------------------------------------
def _split(sentences: list, fraction: float, seed: int) -> dict[str, list]:
  perm = np.random.default_rng(seed).permutation(len(sentences))
  n_valid = max(1, int(round(fraction * len(sentences))))
  return {"train": [sentences[i] for i in perm[n_valid:]],
          "valid": [sentences[i] for i in perm[:n_valid]]}


def load_corpus(d: ml_collections.ConfigDict) -> Corpus:
  """Reads, tokenizes and encodes the configured corpus (see config.py's data fields)."""
  if d.source == "ptb":
    if not d.path:
      raise ValueError("data.source='ptb' needs --config.data.path=<folder with ptb.*.txt>.")
    token_splits = {s: corpora.read_ptb(p) for s, p in corpora.ptb_paths(d.path).items()}
    unk = PTB_UNK
  elif d.source in ("embedded", "csv", "tfds"):
    if d.source == "embedded":
      docs = [corpora.embedded_text()]
    elif d.source == "tfds":
      if not d.tfds:
        raise ValueError("data.source='tfds' needs --config.data.tfds=<name> (e.g. lm1b).")
      docs = [r[0] for r in tfds_source.read_fields(d.tfds, d.tfds_split, [d.tfds_field],
                                                    d.tfds_dir)]
    else:
      if not d.path:
        raise ValueError("data.source='csv' needs --config.data.path=<file.csv>.")
      docs = corpora.read_csv_column(d.path, d.column, skip_bad_records=d.skip_bad_records)
    sents = [s for doc in docs for s in text.tokenize_sentences(doc)]
    token_splits = _split(sents, d.valid_fraction, d.split_seed)
    unk = text.UNKNOWN
  else:
    raise ValueError(f"Unknown data.source {d.source!r}; expected embedded, csv, ptb or tfds.")

  size = d.vocab_size or None
  if d.mode == "stream":
    end = PTB_EOS if d.source == "ptb" else text.END
    vocab = Vocab.build(token_splits["train"], size, unk=unk, specials=(end,))
    splits = {k: [vocab.encode([t for s in v for t in (*s, end)])] for k, v in token_splits.items()}
    return Corpus(vocab, splits, stream=True)
  if d.mode != "sentences":
    raise ValueError(f"Unknown data.mode {d.mode!r}; expected sentences or stream.")
  vocab = Vocab.build(token_splits["train"], size, unk=unk, specials=(text.START, text.END))
  splits = {k: [vocab.encode([text.START, *s, text.END]) for s in v]
            for k, v in token_splits.items()}
  return Corpus(vocab, splits, stream=False)


def make_model(config: ml_collections.ConfigDict, vocab_size: int) -> lm.RecurrentLM:
  return lm.RecurrentLM(vocab_size=vocab_size, **config.model)


# -- task ---------------------------------------------------------------------------
# Values that would make a run meaningless, refused before anything starts.
CONFIG_RULES = dict(
    positive=("data.batch_size", "data.num_steps", "data.max_len", "data.pad_multiple",
              "data.eval_batch_size", "data.test_batch_size", "model.hidden", "model.layers",
              "model.unroll"),
    nonnegative=("data.vocab_size", "model.truncate"),
    fractions=("model.dropout", "data.valid_fraction"),
    choices={"data.source": ("embedded", "csv", "ptb", "tfds"), "data.mode": ("sentences", "stream"),
             "loss_normalize": ("sequences", "tokens"),
             "model.order": stacks.NAMES, **cells.config_choices("cell", "scan", "dtype")})


# Sweep keys (lib.sweeps.tunable): the loss reads the dropout rate as a traced value.
TUNABLE = ("model.dropout",)
STRUCTURAL = ("model.cell", "model.dtype", "model.scan", "model.hidden", "model.layers",
              "model.tie_weights", "model.truncate", "model.unroll", "model.weight_init", "data.vocab_size",
              "data.batch_size", "data.num_steps", "data.max_len", "data.shuffle_seed",
              "loss_normalize")


def build(config: ml_collections.ConfigDict, data: Corpus | None = None) -> Built:
  """The LM task; ``data``: a :func:`load_corpus` result (default: from ``config.data``)."""
  configs.check(config, **CONFIG_RULES)
  corpus = data or load_corpus(config.data)
  d = config.data
  model = make_model(config, len(corpus.vocab))
  normalize = config.loss_normalize
  if corpus.stream:
    source = sequences.StreamBatches(corpus.splits["train"][0], d.batch_size, d.num_steps)
  else:
    source = sequences.SentenceBatches(corpus.splits["train"], d.batch_size, batching.order_seed(config),
                                       max_len=d.max_len, pad_multiple=d.pad_multiple)
  config = durations.resolve(config, source.steps_per_epoch, examples_per_step=d.batch_size)
  valid = Perplexity(model, corpus, d, "valid")
  test = Perplexity(model, corpus, d, "test") if "test" in corpus.splits else None

  def with_hp(hp):  # the model with the swept dropout rate (traced when vmapped)
    return dataclasses.replace(model, dropout=hp["model.dropout"])

  if corpus.stream:
    def loss_fn(params, batch, rng, carry, hp):
      return lm.window_loss(with_hp(hp), params, batch, carry, rng, True, normalize)
    init_carry = lambda: model.zero_carry(d.batch_size)  # noqa: E731
  else:
    def loss_fn(params, batch, rng, hp):
      objective, (metrics, _) = lm.window_loss(with_hp(hp), params, batch, None, rng, True,
                                               normalize)
      return objective, metrics
    init_carry = None

  task = Task(
      name=f"rnnlm/{config.variant}", init_params=model.init, loss_fn=loss_fn,
      train_batch=source, evaluators=(valid,),
      summary_fn=lambda p: {"test_ppl": dict(test.run(p))["ppl"]} if test else {},
      curve_metric="nll", init_carry=init_carry,
      hparams=tunable.hparams(config, TUNABLE),
      # The loss reads the embedding only as embed[x] (unless the softmax shares it).
      row_tables={} if model.tie_weights else {"embed": "x"})
  return Built(task=task, config=config, model=model, data=corpus)


def _add(a, b):
  return jax.tree.map(jnp.add, a, b)


class Perplexity:
  """``nll`` and ``ppl`` per real token of one split, one jitted pass (sums stay on
  the device; one transfer per evaluation). Stream corpora carry the state
  across windows, as the PTB test pass does."""

  def __init__(self, model: lm.RecurrentLM, corpus: Corpus, d: ml_collections.ConfigDict,
               split: str):
    if corpus.stream:
      bs = d.test_batch_size if split == "test" else d.eval_batch_size
      w = sequences.stream_windows(corpus.splits[split][0], bs, d.num_steps)
      data = (jnp.asarray(w["x"]), jnp.asarray(w["y"]))
      run = jax.jit(lambda p, x, y: lm.stream_nll(model, p, x, y))
      self._total = lambda p: run(p, *data)
    else:
      s = corpus.splits[split]
      batches = sequences.SentenceBatches(s, min(d.eval_batch_size, len(s)), 0, max_len=d.max_len,
                                          pad_multiple=d.pad_multiple, shuffle=False).all_batches()
      run = jax.jit(lambda p, b: lm.nll(model.apply(p, b["x"])[0], b["y"], b["mask"]))
      self._total = lambda p: functools.reduce(_add, [run(p, b) for b in batches])

  def run(self, params):
    tot = self._total(params)
    mean = float(tot.total / tot.count)
    yield "nll", mean
    yield "ppl", math.exp(mean)


def initial_loss(task: Task, config: ml_collections.ConfigDict, model: lm.RecurrentLM,
                 num_batches: int = 20) -> float:
  """Mean NLL per token of the untrained model on the first training batches
  (the notes' check: close to log V for near-uniform predictions)."""
  params = init_state(task, config)[0].params
  run = jax.jit(lambda p, b: lm.nll(model.apply(p, b["x"])[0], b["y"], b.get("mask")))
  steps = range(min(num_batches, task.train_batch.steps_per_epoch))
  tot = functools.reduce(_add, [
      run(params, {k: v for k, v in task.train_batch(s).items() if k != "reset"}) for s in steps])
  return float(tot.total / tot.count)


def sample_sentences(model, params, vocab: Vocab, g: ml_collections.ConfigDict) -> list[str]:
  """``g.num`` sentences of at least ``g.min_len`` words, never the unknown token."""
  start, end = vocab.id(text.START), vocab.id(text.END)
  if text.START not in vocab:  # stream vocabularies: sentences start after an end token
    start = end
  forbid = tuple(sorted({vocab.unk_id, start} - {end}))
  out, key = [], jax.random.key(g.seed)
  for attempt in range(10):  # draw more only if some ran past max_len without ending
    key, sub = jax.random.split(key)
    toks, lens, done = generation.sample(model, params, sub, num=2 * g.num, max_len=g.max_len,
                                         start_id=start, end_id=end, forbid=forbid,
                                         min_len=g.min_len, temperature=g.temperature)
    out += generation.decode_sentences(vocab, toks, lens, done)
    if len(out) >= g.num:
      break
  return out[:g.num]


# -- run ----------------------------------------------------------------------------
def run(config: ml_collections.ConfigDict, workdir: str, *, data: Corpus | None = None,
        verbose: bool = True) -> dict:
  """Trains, evaluates, exports ``params.npz`` and ``vocab.json``, samples sentences."""
  built = build(config, data)
  task, config, model, vocab = built.task, built.config, built.model, built.data.vocab
  os.makedirs(workdir, exist_ok=True)
  log_v, init_nll = math.log(len(vocab)), initial_loss(task, config, model)
  msg = (f"Vocabulary {len(vocab)}; expected loss for random predictions log V = {log_v:.4f}; "
         f"actual initial loss {init_nll:.4f}; {task.train_batch.steps_per_epoch} steps/epoch.")
  logging.info(msg)
  if verbose:
    print(msg, flush=True)
  summary = trainer.fit(task, config, workdir)
  params, _ = restore_params(task, config, workdir)
  checkpoint.export_npz(params, os.path.join(workdir, "params.npz"))
  vocab.save(os.path.join(workdir, "vocab.json"))
  report = {"vocab_size": len(vocab), "log_v": log_v, "initial_nll": init_nll,
            "final": summary["final"], "extra": summary["extra"],
            "wall_time_s": summary["wall_time_s"]}
  if config.generate.num:
    report["samples"] = sample_sentences(model, params, vocab, config.generate)
    with open(os.path.join(workdir, "samples.txt"), "w") as f:
      f.write("\n".join(report["samples"]) + "\n")
  with open(os.path.join(workdir, "lm_report.json"), "w") as f:
    json.dump(report, f, indent=2)
  if verbose:
    _print_report(summary, report)
  return {**summary, "lm": report}


def _print_report(summary: dict, report: dict) -> None:
  f = summary["final"]
  train_nll = f.get("train/nll", float("nan"))
  print(f"{summary['experiment']}: {summary['status']} after {summary['steps']} steps in "
        f"{summary['wall_time_s']:.0f} s. Loss per word: initial {report['initial_nll']:.4f} "
        f"(log V {report['log_v']:.4f}) -> train {train_nll:.4f}; valid ppl "
        f"{f.get('eval/ppl', float('nan')):.2f}"
        + (f"; test ppl {report['extra']['test_ppl']:.2f}" if "test_ppl" in report["extra"] else ""))
  for s in report.get("samples", []):
    print("  " + s)
