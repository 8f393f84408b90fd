"""Vocabulary, subsampling, windows and the step-indexed pair stream."""
import collections

import jax
import jax.numpy as jnp

import numpy as np
import pytest

from experiments.word2vec import skipgram
from lib.eval import word_eval
from lib.nn import word2vec
from lib.train import sparse_sgd
from lib.train.state import TrainState


def test_count_words_orders_by_count_and_drops_or_maps_rare_words():
  sents = [["b", "a", "a", "c"], ["a", "b", "d", "rare"]]
  v = skipgram.count_words(sents, min_count=2)
  assert v.tokens == ["a", "b"] and v.counts.tolist() == [3, 2] and v.unk is None
  ids, sent = skipgram.encode(sents, v)
  assert ids.tolist() == [1, 0, 0, 0, 1] and sent.tolist() == [0, 0, 0, 1, 1]
  u = skipgram.count_words(sents, min_count=2, unknown="UNK")
  assert u.tokens == ["a", "UNK", "b"] and u.counts.tolist() == [3, 3, 2]  # c, d, rare -> UNK
  ids, _ = skipgram.encode(sents, u)
  assert ids.tolist() == [2, 0, 0, 1, 0, 2, 1, 1]
  capped = skipgram.count_words(sents, max_size=2, unknown="UNK")
  assert capped.tokens == ["UNK", "a"]  # one word plus UNK (5 others)


def test_keep_probability_is_word2vecs_formula():
  counts = np.array([10_000, 1_000, 10, 1])
  s = 1e-3
  t = s * counts.sum()
  p = skipgram.keep_probabilities(counts, s)
  for c, got in zip(counts, p):
    assert got == pytest.approx(min(1.0, (np.sqrt(c / t) + 1) * t / c))
  assert p[0] < p[1] < 1.0 and p[2] == p[3] == 1.0
  assert (skipgram.keep_probabilities(counts, 0.0) == 1).all()


def test_subsampling_keeps_words_at_their_keep_rate():
  rng = np.random.default_rng(0)
  ids = rng.choice(3, size=20_000, p=[0.8, 0.15, 0.05]).astype(np.int32)
  counts = np.bincount(ids, minlength=3)
  stream = skipgram.PairStream(ids, np.zeros_like(ids), counts, window=1, dynamic=False,
                               sample=1e-2, epochs=20, pairs_per_step=1024, seed=0)
  kept = np.zeros(3)
  for e in range(20):
    kept += np.bincount(stream._epoch(e).words, minlength=3)
  rate = kept / (20 * counts)
  np.testing.assert_allclose(rate, skipgram.keep_probabilities(counts, 1e-2), atol=0.01)


def test_dynamic_window_distance_frequencies():
  # One long sentence, no subsampling: distance k is used by centres whose window
  # is >= k, so P(k) = (W - k + 1) / (W (W + 1) / 2).
  W, n = 5, 50_000
  ids = np.arange(n, dtype=np.int32) % 100
  stream = skipgram.PairStream(ids, np.zeros(n, np.int32), np.full(100, n // 100), window=W,
                               dynamic=True, sample=0, epochs=1, pairs_per_step=1 << 20, seed=3)
  ep = stream._epoch(0)
  x, y = stream.pairs(0, 0, stream.epoch_pairs[0])
  # ids are positions mod 100, so the distance is recoverable.
  d = np.abs(((x.astype(int) - y.astype(int) + 50) % 100) - 50)
  freq = np.bincount(d, minlength=W + 1)[1:] / len(d)
  expect = np.array([W - k + 1 for k in range(1, W + 1)]) / (W * (W + 1) / 2)
  np.testing.assert_allclose(freq, expect, atol=0.005)
  assert stream.epoch_pairs[0] == int((ep.left + ep.right).sum())


def _brute_force_pairs(ids, sent, keep_p, window, dynamic, seed, epoch):
  rng = np.random.default_rng([skipgram._TAG, seed, epoch])
  kept = rng.random(len(ids)) < keep_p
  w, s = ids[kept], sent[kept]
  b = rng.integers(1, window + 1, len(w)) if dynamic else np.full(len(w), window)
  pairs = []
  for i in range(len(w)):
    for j in range(i - b[i], i + b[i] + 1):
      if j != i and 0 <= j < len(w) and s[j] == s[i]:
        pairs.append((w[j], w[i]))
  return pairs


@pytest.mark.parametrize("cross", [False, True])
def test_stream_enumerates_word2vecs_pairs_in_order_across_steps(cross):
  rng = np.random.default_rng(1)
  lengths = rng.integers(1, 12, 40)
  sent = np.repeat(np.arange(40), lengths).astype(np.int32)
  ids = rng.integers(0, 30, len(sent)).astype(np.int32)
  counts = np.bincount(ids, minlength=30)
  stream = skipgram.PairStream(ids, sent, counts, window=3, dynamic=True, sample=0.02, epochs=3,
                               pairs_per_step=37, seed=5, cross_sentences=cross)
  got = collections.defaultdict(list)
  for step in range(stream.num_steps):
    e, _ = stream.locate(step)
    b = stream.batch(step)
    assert b["input"].shape == (37,) and b["mask"].dtype == np.float32
    n = int(b["mask"].sum())
    assert (b["mask"][:n] == 1).all() and (b["mask"][n:] == 0).all()
    got[e].extend(zip(b["input"][:n].tolist(), b["target"][:n].tolist()))
  s = np.zeros_like(sent) if cross else sent
  for e in range(3):
    assert got[e] == _brute_force_pairs(ids, s, stream.keep_p, 3, True, 5, e)
  assert stream.num_steps == sum(-(-n // 37) for n in stream.epoch_pairs)


def test_fixed_window_one_is_the_tutorials_num_skips_two():
  ids = np.arange(6, dtype=np.int32)
  stream = skipgram.PairStream(ids, np.zeros(6, np.int32), np.ones(6), window=1, dynamic=False,
                               sample=0, epochs=1, pairs_per_step=100, seed=0)
  x, y = stream.pairs(0, 0, stream.epoch_pairs[0])
  assert list(zip(x.tolist(), y.tolist())) == [
      (1, 0), (0, 1), (2, 1), (1, 2), (3, 2), (2, 3), (4, 3), (3, 4), (5, 4), (4, 5)]


def test_same_step_same_batch_and_bad_steps():
  ids = np.arange(200, dtype=np.int32) % 7
  mk = lambda: skipgram.PairStream(ids, np.zeros(200, np.int32), np.bincount(ids), window=2,
                                   dynamic=True, sample=0.1, epochs=2, pairs_per_step=64, seed=9)
  a, b = mk(), mk()
  for step in (a.num_steps - 1, 0, 3):
    for k in ("input", "target", "mask"):
      np.testing.assert_array_equal(a.batch(step)[k], b.batch(step)[k])
  with pytest.raises(IndexError):
    a.batch(a.num_steps)
  with pytest.raises(ValueError, match="window"):
    skipgram.PairStream(ids, np.zeros(200, np.int32), np.bincount(ids), window=0, dynamic=True,
                        sample=0, epochs=1, pairs_per_step=8, seed=0)


def test_skipgram_learns_planted_topics():
  # Two topics of 10 words; a sentence draws all its words from one topic.
  rng = np.random.default_rng(0)
  sents = [[f"{'ab'[t]}{i}" for i in rng.integers(0, 10, 12)] for t in rng.integers(0, 2, 600)]
  vocab = skipgram.count_words(sents)
  ids, sent = skipgram.encode(sents, vocab)
  stream = skipgram.PairStream(ids, sent, vocab.counts, window=3, dynamic=True, sample=0,
                               epochs=3, pairs_per_step=2048, seed=0)
  spec = word2vec.Spec(len(vocab), 16, num_sampled=8, negatives=5, group_size=16)
  # A 20-word vocabulary: every row recurs in a minibatch, so minibatches stay small.
  step = jax.jit(sparse_sgd.make_sparse_step(spec, word2vec.Noise(spec, vocab.counts), 32)(
      None, lambda s: 0.025))
  state = TrainState(step=jnp.asarray(0), params=word2vec.init_params(spec, jax.random.key(0)),
                             opt_state=())
  losses = []
  for s in range(stream.num_steps):
    state, m = step(state, stream.batch(s), jax.random.key(s))
    losses.append(float(m["loss"].total / m["loss"].count))
  assert losses[-1] < losses[0] - 0.5, losses
  unit = word_eval.normalize(np.asarray(state.params["in"]))
  ids_, _ = word_eval.nearest(unit, [vocab.index["a0"], vocab.index["b0"]], k=5)
  assert all(vocab.tokens[i][0] == "a" for i in ids_[0]), [vocab.tokens[i] for i in ids_[0]]
  assert all(vocab.tokens[i][0] == "b" for i in ids_[1]), [vocab.tokens[i] for i in ids_[1]]
