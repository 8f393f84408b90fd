"""word2vec end to end on small corpora: outputs, gensim loading, resume, variants."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from experiments.word2vec import config as config_lib, experiment
from experiments.word2vec import skipgram
from lib.data import word_vectors
from lib.errors import DataError
from tests import interrupt
from tests.lib.data import tfds_builders

pytestmark = pytest.mark.slow  # trains or starts processes: left out of `make test-fast`

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def small(variant="embedded", **data):
  c = config_lib.get_config(variant)
  c.trainer.num_epochs = 2
  c.data.update(data)
  return c


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
  """A PTB-format file: two topics that never share a sentence, and a question file."""
  d = tmp_path_factory.mktemp("w2v")
  rng = np.random.default_rng(0)
  lines = [" ".join(f"{'ab'[t]}{i}" for i in rng.integers(0, 12, 10)) for t in rng.integers(0, 2, 800)]
  (d / "train.txt").write_text("\n".join(lines) + "\n")
  (d / "q.txt").write_text(": topics\na0 a1 b0 b1\na2 a3 b2 b3\nA0 a1 zz b1\n")
  return d


@pytest.fixture(scope="module")
def embedded_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("embedded")
  return experiment.run(small(), str(workdir), verbose=False), workdir


def test_embedded_run_writes_vectors_that_gensim_loads(embedded_run):
  from gensim.models import KeyedVectors
  summary, workdir = embedded_run
  assert summary["status"] == "completed"
  rep = summary["report"]
  assert rep["vocab_size"] > 500 and rep["words_per_s"] > 0 and len(rep["pairs_per_epoch"]) == 2
  kv = KeyedVectors.load_word2vec_format(str(workdir / "vectors.txt"))
  words, vectors = word_vectors.read(str(workdir / "vectors.txt"))
  assert len(kv) == len(words) == rep["vocab_size"] and kv.vector_size == 100
  np.testing.assert_allclose(kv[words[5]], vectors[5], rtol=1e-5)
  assert "string:" in (workdir / "neighbours.txt").read_text()
  for f in ("loss_curve.png", "summary.json", "metrics.jsonl", "word2vec_report.json"):
    assert (workdir / f).exists(), f
  losses = [json.loads(l)["loss"] for l in (workdir / "metrics.jsonl").read_text().splitlines()
            if '"train"' in l]
  assert losses[-1] < losses[0]


def test_file_corpus_with_analogies(tmp_path, corpus):
  c = small(corpus=str(corpus / "train.txt"), analogies=str(corpus / "q.txt"), min_count=1,
            sample=0.0)
  c.train.minibatch, c.model.group_size = 128, 32
  s = experiment.run(c, str(tmp_path), verbose=False)
  a = s["report"]["analogies"]
  assert a["total"] == 2 and a["skipped"] == 1  # 'zz' is not a word; 'A0' folds to a0
  assert "eval/analogy_accuracy" in s["final"]
  near = s["report"]["neighbours"]
  assert not near  # no probe word in this corpus
  words, vectors = word_vectors.read(str(tmp_path / "vectors.txt"))
  from lib.eval import word_eval
  ids, _ = word_eval.nearest(word_eval.normalize(vectors), [words.index("a0")], k=5)
  assert all(words[i].startswith("a") for i in ids[0]), [words[i] for i in ids[0]]


def test_same_seed_same_vectors(tmp_path, embedded_run):
  summary, workdir = embedded_run
  again = experiment.run(small(), str(tmp_path), verbose=False)
  assert again["final"]["train/loss"] == summary["final"]["train/loss"]
  assert (tmp_path / "vectors.txt").read_text() == (workdir / "vectors.txt").read_text()


def test_interrupted_run_resumes_to_the_same_vectors(tmp_path, embedded_run, monkeypatch):
  _, workdir = embedded_run
  c = small()
  c.trainer.checkpoint_every_steps = 3
  s = interrupt.cut_then_resume(monkeypatch, skipgram.PairStream, "batch", 7,
                                lambda: experiment.run(c, str(tmp_path), verbose=False))
  assert s["resumed_from"] == 7  # the trainer checkpoints where the interruption landed
  np.testing.assert_allclose(word_vectors.read(str(tmp_path / "vectors.txt"))[1],
                             word_vectors.read(str(workdir / "vectors.txt"))[1], atol=1e-6)


@pytest.mark.parametrize("variant", ["notes", "softmax"])
def test_other_variants_train(tmp_path, variant):
  c = small(variant)
  c.trainer.num_epochs = 1
  s = experiment.run(c, str(tmp_path), verbose=False)
  assert s["status"] == "completed" and s["steps"] >= 2
  assert np.isfinite(s["final"]["train/loss"])


def test_sparse_path_needs_plain_sgd(tmp_path):
  c = small()
  c.optimizer.name = "adam"
  with pytest.raises(ValueError, match="train.sparse=True is plain SGD"):
    experiment.run(c, str(tmp_path), verbose=False)


def test_dense_path_with_adam_trains(tmp_path):
  c = small()
  c.trainer.num_epochs = 1
  c.optimizer.name, c.optimizer.lr, c.optimizer.schedule = "adam", 1e-3, "constant"
  c.train.sparse, c.train.minibatches_per_step = False, 1
  s = experiment.run(c, str(tmp_path), verbose=False)
  assert s["status"] == "completed" and np.isfinite(s["final"]["train/loss"])


def test_bad_corpora_are_clear_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="No corpus file"):
    experiment.run(small(corpus=str(tmp_path / "missing.txt")), str(tmp_path / "w"), verbose=False)
  bad = tmp_path / "bad.txt"
  bad.write_bytes(b"fine words here\nmore words\n\xff\xfe broken\n")
  with pytest.raises(DataError, match=r"bad.txt:3: not UTF-8"):
    experiment.run(small(corpus=str(bad)), str(tmp_path / "w2"), verbose=False)
  few = tmp_path / "few.txt"
  few.write_text("one two\n")
  with pytest.raises(DataError, match="fewer than 2 words"):
    experiment.run(small(corpus=str(few)), str(tmp_path / "w3"), verbose=False)


def test_main_prints_throughput_and_neighbours(tmp_path):
  r = subprocess.run([sys.executable, "-m", "experiments.word2vec.main", f"--workdir={tmp_path}",
                      "--config=experiments/word2vec/config.py:embedded", "--config.trainer.num_epochs=1"],
                     cwd=REPO, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-2000:]
  assert "words/s" in r.stdout and "function:" in r.stdout
  assert "words/s" in r.stderr  # the progress line's rate is in words


def test_a_tfds_text_dataset_is_read_as_its_files_would_be(tmp_path, corpus):
  lines = (corpus / "train.txt").read_text().splitlines()
  name = tfds_builders.text(tmp_path, {"train": ["\n".join(lines[:400]), "\n".join(lines[400:])]})
  c = small(tfds=name, tfds_dir=str(tmp_path))
  from_tfds = experiment.read_sentences(c.data)
  from_file = experiment.read_sentences(small(corpus=str(corpus / "train.txt")).data)
  assert sorted(map(tuple, from_tfds)) == sorted(map(tuple, from_file))  # records in TFDS' order
  c.trainer.num_epochs = 1
  assert experiment.run(c, str(tmp_path / "run"), verbose=False)["status"] == "completed"
