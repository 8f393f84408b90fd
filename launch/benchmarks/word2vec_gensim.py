"""word2vec: rnnlab against gensim (2 workers), same corpus and settings.

Corpora: PTB train (``python -m launch.bench word2vec``) or the largest English
text at hand, ``experiments.word2vec.english_corpus`` (PTB train, the English side of
Tatoeba eng-fra, SICK's training sentences, the Lee news prose: 1.9M words;
``python -m launch.bench word2vec_english``).

Settings (gensim's defaults for skip-gram): dim 100, window 5,
5 negatives, sample 1e-4, min_count 5, 5 epochs, lr 0.025 -> 1e-4.
Measures, interleaved so that machine drift hits both alike:
  * gensim: ``Word2Vec.train`` wall time (``build_vocab`` excluded);
  * rnnlab train: parameter init, compilation and every training step of
    the experiment's sparse SGD over the pair stream (vocabulary and stream
    plan excluded, as gensim's ``build_vocab``);
  * rnnlab train, cache warm: the same with the compiled step loaded from
    JAX's persistent compilation cache (``JAX_COMPILATION_CACHE_DIR``), as a
    researcher's second run of a config;
  * rnnlab run: the whole ``experiments.word2vec`` run through the shared
    trainer (checkpoints, metrics, plot, export included), once.
words/s = 5 epochs x corpus words / seconds (gensim's measure). Analogy
accuracy: questions-words.txt, restricted vocabulary, 3CosAdd, scored by
``lib.eval.word_eval`` for both (and by gensim's own evaluator for gensim, as a check).
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time

import jax
from jax.experimental.compilation_cache import compilation_cache
import numpy as np

from experiments.word2vec import config as config_lib, english_corpus, experiment
from lib.eval import word_eval
from lib.train import trainer
from lib.train.state import init_state

DATA = os.environ.get("RNNLAB_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "..",
                                                 "shared", "data"))
COLUMNS = ("system", "train_s", "words_per_s", "vs_gensim", "analogy_acc", "questions", "note")


def _config(corpus: str):
  c = config_lib.get_config("gensim")
  c.data.corpus = corpus
  c.data.analogies = os.path.join(DATA, "analogy", "questions-words.txt")
  c.trainer.checkpoint_every_steps = 0
  return c


def train_rnnlab(config, data) -> tuple[float, np.ndarray]:
  """Seconds for init + compile + all steps, and the input vectors."""
  built = experiment.build(config, data)
  task, config = built.task, built.config
  t0 = time.perf_counter()
  state, tx, schedule, key = init_state(task, config)
  step = jax.jit(lambda s, b, k: task.make_step(tx, schedule)(s, b, jax.random.fold_in(k, s.step)),
                 donate_argnums=0, compiler_options=dict(task.compiler_options) or None)
  for s in range(data.stream.num_steps):
    state, _ = step(state, task.train_batch(s), key)
  vectors = np.asarray(state.params["in"])  # waits for the last step
  return time.perf_counter() - t0, vectors


def train_gensim(sentences, workers=2, seed=1):
  from gensim.models import Word2Vec
  m = Word2Vec(vector_size=100, window=5, negative=5, sample=1e-4, min_count=5, sg=1,
               workers=workers, seed=seed, alpha=0.025, min_alpha=0.0001)
  m.build_vocab(sentences)
  t0 = time.perf_counter()
  m.train(sentences, total_examples=len(sentences), epochs=5)
  return time.perf_counter() - t0, m


def _warm_times(config, data, repeats: int) -> list[float]:
  """Train-loop seconds with the step loaded from JAX's persistent compilation
  cache (what ``JAX_COMPILATION_CACHE_DIR`` gives a second run of a config)."""
  times = []
  with tempfile.TemporaryDirectory() as cache:
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    try:
      for i in range(repeats + 1):
        t, _ = train_rnnlab(config, data)
        if i:  # the first run fills the cache
          times.append(t)
    finally:
      jax.config.update("jax_compilation_cache_dir", None)
      compilation_cache.reset_cache()
  return times


def run(peers=("gensim",), repeats: int = 3) -> list[dict]:
  corpus = os.path.join(DATA, "ptb", "ptb.train.txt")
  if not os.path.isfile(corpus):
    raise FileNotFoundError(f"PTB train not found at {corpus}; set RNNLAB_DATA to "
                            "the folder holding ptb/ and analogy/.")
  return compare(corpus, peers, repeats)


def run_english(peers=("gensim",), repeats: int = 3) -> list[dict]:
  with tempfile.TemporaryDirectory() as tmp:
    words = english_corpus.build(DATA, tmp)
    rows = compare(tmp, peers, repeats)
  rows[0]["note"] = (rows[0].get("note", "") + "; corpus " +
                     ", ".join(f"{k} {v:,}" for k, v in words.items()) + " words")
  return rows


def compare(corpus: str, peers=("gensim",), repeats: int = 3) -> list[dict]:
  """The table's rows for one corpus (a file or a folder of files, ``lines`` format)."""
  config = _config(corpus)
  data = experiment.Data(config)
  words = 5 * data.raw_words
  sentences = experiment.read_sentences(config.data)
  rows, g_times, r_times, g_acc, g_acc_own, r_acc = [], [], [], [], [], []
  use_gensim = "gensim" in peers
  if use_gensim:
    try:
      import gensim  # noqa: F401
    except ImportError:
      use_gensim = False
      rows.append({"system": "gensim", "note": "not installed (pip install gensim)"})
  for _ in range(repeats):
    t, vectors = train_rnnlab(config, data)
    r_times.append(t)
    r_acc.append(word_eval.evaluate_analogies(data.vocab.tokens, vectors, data.analogies))
    if use_gensim:
      t, m = train_gensim(sentences)
      g_times.append(t)
      g_acc.append(word_eval.evaluate_analogies(list(m.wv.index_to_key), m.wv.vectors,
                                                data.analogies))
      g_acc_own.append(m.wv.evaluate_word_analogies(config.data.analogies)[0])
  g_med = statistics.median(g_times) if g_times else None

  def row(system, times, accs, note):
    t = statistics.median(times)
    return {"system": system, "train_s": round(t, 2), "words_per_s": round(words / t),
            "vs_gensim": round(g_med / t, 2) if g_med else None,
            "analogy_acc": round(statistics.mean(a["accuracy"] for a in accs), 4),
            "questions": accs[0]["total"], "note": note}

  if use_gensim:
    rows.append(row("gensim 4.4 (2 workers)", g_times, g_acc,
                    f"{repeats} runs; its own evaluator: "
                    f"{statistics.mean(g_acc_own):.4f}"))
  rows.append(row("rnnlab (train loop)", r_times, r_acc,
                  f"{repeats} runs: init + compile + steps; accuracies "
                  + ", ".join(f"{a['accuracy']:.4f}" for a in r_acc)))
  with tempfile.TemporaryDirectory() as tmp:
    s = experiment.run(config, tmp, verbose=False)
  rep = s["report"]
  rows.append({"system": "rnnlab (whole run)", "train_s": rep["train_s"],
               "words_per_s": round(rep["words_per_s"]),
               "vs_gensim": round(g_med / rep["train_s"], 2) if g_med else None,
               "analogy_acc": round(rep["analogies"]["accuracy"], 4),
               "questions": rep["analogies"]["total"],
               "note": "experiments.word2vec: trainer, per-epoch analogy eval, checkpoint, plot"})
  warm_times = _warm_times(config, data, repeats)
  rows.append(row("rnnlab (train loop, cache warm)", warm_times, r_acc,
                  "as above with the step loaded from JAX's compilation cache"))
  return rows
