"""Nearest neighbours and analogies, on planted vectors and against gensim."""
import numpy as np
import pytest

from lib.data import word_vectors
from lib.errors import DataError
from lib.eval import word_eval

WORDS = ["man", "woman", "king", "queen", "paris", "france", "rome", "italy", "apple"]


def planted():
  """Gender and capital-of directions planted exactly, plus noise dimensions."""
  rng = np.random.default_rng(0)
  base = {w: rng.normal(size=16) for w in ["man", "king", "paris", "rome", "apple"]}
  g, c = np.zeros(16), np.zeros(16)
  g[0], c[1] = 3.0, 3.0
  vec = dict(base)
  vec["woman"], vec["queen"] = base["man"] + g, base["king"] + g
  vec["france"], vec["italy"] = base["paris"] + c, base["rome"] + c
  return np.stack([vec[w] for w in WORDS]).astype(np.float32)


def write_questions(path, lines):
  path.write_text("\n".join(lines) + "\n")
  return str(path)


def test_analogies_on_a_hand_made_set(tmp_path):
  path = write_questions(tmp_path / "q.txt", [
      ": gender", "man woman king queen", "king queen man woman", "Man Woman unknown x",
      ": capital", "paris france rome italy", "rome italy paris france", "paris france rome apple"])
  r = word_eval.evaluate_analogies(WORDS, planted(), word_eval.read_analogies(path))
  assert [(s["section"], s["correct"], s["total"]) for s in r["sections"]] == [
      ("gender", 2, 2), ("capital", 2, 3)]
  assert r["correct"] == 4 and r["total"] == 5 and r["skipped"] == 1
  assert r["accuracy"] == pytest.approx(0.8)


def test_restrict_vocab_skips_questions_beyond_it(tmp_path):
  path = write_questions(tmp_path / "q.txt", [": s", "man woman king queen"])
  r = word_eval.evaluate_analogies(WORDS, planted(), word_eval.read_analogies(path),
                                   restrict_vocab=3)
  assert r["total"] == 0 and r["skipped"] == 1


def test_nearest_neighbours_on_planted_vectors():
  v = np.zeros((5, 3), np.float32)
  v[0], v[1], v[2], v[3], v[4] = [1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0.1, 0.8, 0.2], [-1, 0, 0]
  ids, sim = word_eval.nearest(word_eval.normalize(v), [0, 2], k=2)
  assert ids.tolist() == [[1, 3], [3, 1]]
  assert sim[0, 0] == pytest.approx(0.9 / np.hypot(0.9, 0.1))
  ids, _ = word_eval.nearest(word_eval.normalize(v), [0], k=1, exclude_self=False)
  assert ids.tolist() == [[0]]  # the notes' argsort ends with the word itself


def test_malformed_question_file_names_the_line(tmp_path):
  path = write_questions(tmp_path / "bad.txt", [": s", "a b c d", "a b c"])
  with pytest.raises(DataError, match=r"bad.txt:3: expected four words"):
    word_eval.read_analogies(path)
  with pytest.raises(DataError, match="before the first"):
    word_eval.read_analogies(write_questions(tmp_path / "b2.txt", ["a b c d"]))


def test_same_accuracy_as_gensims_evaluator(tmp_path):
  from gensim.models import KeyedVectors
  rng = np.random.default_rng(1)
  words = [f"w{i}" for i in range(60)]
  vectors = rng.normal(size=(60, 5)).astype(np.float32)
  lines = [": one"] + [" ".join(rng.choice(words, 4, replace=False)) for _ in range(150)]
  lines += [": two"] + [" ".join(rng.choice(words, 4, replace=False)) for _ in range(150)]
  path = write_questions(tmp_path / "q.txt", lines)
  ours = word_eval.evaluate_analogies(words, vectors, word_eval.read_analogies(path),
                                      restrict_vocab=40)
  kv = KeyedVectors(5)
  kv.add_vectors(words, vectors)
  score, sections = kv.evaluate_word_analogies(path, restrict_vocab=40)
  assert ours["accuracy"] == pytest.approx(score)
  assert ours["correct"] == len(sections[-1]["correct"]) > 0


def test_exported_vectors_load_in_gensim_and_in_our_reader(tmp_path):
  from gensim.models import KeyedVectors
  vectors = planted()
  path = str(tmp_path / "vectors.txt")
  word_vectors.write(path, WORDS, vectors)
  kv = KeyedVectors.load_word2vec_format(path, binary=False)
  assert list(kv.index_to_key) == WORDS
  np.testing.assert_allclose(kv.vectors, vectors, rtol=1e-5, atol=1e-6)
  words, back = word_vectors.read(path)
  assert words == WORDS
  np.testing.assert_allclose(back, vectors, rtol=1e-5, atol=1e-6)
