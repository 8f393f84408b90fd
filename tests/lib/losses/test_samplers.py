"""Samplers: TF's log-uniform formula, draw frequencies, expected counts."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lib.losses import samplers as cs


def test_log_uniform_probs_are_tfs_formula_and_sum_to_one():
  p = cs.log_uniform_probs(50000)
  assert p.sum() == pytest.approx(1.0, abs=1e-9)
  for k in (0, 1, 7, 49999):
    assert p[k] == pytest.approx((math.log(k + 2) - math.log(k + 1)) / math.log(50001))


@pytest.mark.parametrize("which", ["log_uniform", "unigram"])
def test_draw_frequencies_match_the_probabilities(which):
  V, n = 20, 400_000
  probs = None if which == "log_uniform" else cs.unigram_probs(np.arange(1, V + 1)[::-1] ** 2)
  p = cs.log_uniform_probs(V) if probs is None else probs
  ids = np.asarray(cs.draw(jax.random.key(0), (n,), probs, V))
  freq = np.bincount(ids, minlength=V) / n
  # 5 binomial standard deviations per class.
  np.testing.assert_array_less(np.abs(freq - p), 5 * np.sqrt(p * (1 - p) / n) + 1e-9)


def test_non_unique_expected_counts_are_p_times_s():
  V, S = 1000, 64
  out = cs.log_uniform_sampler(jax.random.key(1), jnp.array([0, 5, 999]), S, False, V)
  p = cs.log_uniform_probs(V)
  np.testing.assert_allclose(out.true_expected_count, p[[0, 5, 999]] * S, rtol=1e-6)
  np.testing.assert_allclose(out.sampled_expected_count_S, p[np.asarray(out.sampled_S)] * S,
                             rtol=1e-6)
  assert int(out.num_tries) == S


def test_unique_sampling_is_distinct_and_counts_follow_tfs_formula():
  V, S = 200, 32
  sample = jax.jit(lambda k: cs.log_uniform_sampler(k, jnp.array([3]), S, True, V))
  p = cs.log_uniform_probs(V)
  hits, formula = np.zeros(V), np.zeros(V)
  n = 3000
  for i in range(n):
    out = sample(jax.random.key(i))
    s, tries = np.asarray(out.sampled_S), int(out.num_tries)
    assert len(set(s.tolist())) == S and s.min() >= 0 and tries >= S
    # TF: expected count = 1 - (1 - p) ** num_tries, for the samples and the true class.
    np.testing.assert_allclose(out.sampled_expected_count_S, -np.expm1(tries * np.log1p(-p[s])),
                               rtol=1e-5)
    np.testing.assert_allclose(out.true_expected_count, -np.expm1(tries * np.log1p(-p[[3]])),
                               rtol=1e-5)
    hits[s] += 1
    formula += -np.expm1(tries * np.log1p(-p))
  # The formula's average is the inclusion rate of each class (up to sampling noise
  # and the tries' dependence on the draw, which is small here).
  rate, expect = hits / n, formula / n
  np.testing.assert_allclose(rate, expect, atol=0.03)
  assert abs(rate.sum() - S) < 1e-9 and abs(expect.sum() - S) < 0.5


def test_unique_needs_enough_classes():
  with pytest.raises(ValueError, match="unique sampling"):
    cs.log_uniform_sampler(jax.random.key(0), jnp.array([0]), 10, True, 5)


def test_same_key_same_samples():
  a = cs.unigram_sampler(jax.random.key(7), jnp.array([1]), 8, True, cs.unigram_probs(np.arange(1, 50)))
  b = cs.unigram_sampler(jax.random.key(7), jnp.array([1]), 8, True, cs.unigram_probs(np.arange(1, 50)))
  np.testing.assert_array_equal(a.sampled_S, b.sampled_S)
