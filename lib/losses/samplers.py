"""Candidate samplers for sampled losses, with TensorFlow's expected counts.

* :func:`log_uniform_sampler`: TF's ``log_uniform_candidate_sampler`` (the
  notes' ``nce_loss`` default): class ``k`` of ``range_max`` (ids sorted by
  falling frequency) has probability ``log((k+2)/(k+1)) / log(range_max+1)``.
* :func:`unigram_sampler`: word2vec's noise distribution, counts ** 0.75.

Both return TF's triple ``(sampled, true_expected_count, sampled_expected_count)``.
The expected count of a class is how many times it is expected among the
samples: ``p * num_sampled`` when drawing with replacement; with ``unique``
(rejection until ``num_sampled`` distinct classes after ``num_tries`` draws)
TF uses ``1 - (1 - p) ** num_tries``, and so do we.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Sampled(NamedTuple):
  sampled_S: jax.Array               # int32 class ids
  true_expected_count: jax.Array     # same shape as the true classes
  sampled_expected_count_S: jax.Array
  num_tries: jax.Array               # draws made (= S without ``unique``)


def log_uniform_probs(range_max: int) -> np.ndarray:
  """``P(k) = log((k+2)/(k+1)) / log(range_max+1)`` for k < range_max (sums to 1)."""
  k = np.arange(range_max, dtype=np.float64)
  return (np.log1p(1.0 / (k + 1.0)) / math.log(range_max + 1.0))


def unigram_probs(counts_V, power: float = 0.75) -> np.ndarray:
  """word2vec's negative-sampling distribution, ``counts ** power`` normalised."""
  p = np.asarray(counts_V, np.float64) ** power
  return p / p.sum()


def expected_count(p: jax.Array, num_sampled: int, num_tries: jax.Array, unique: bool) -> jax.Array:
  """TF's ``ExpectedCountHelper``: ``p * S`` or, for unique sampling, ``-expm1(tries * log1p(-p))``."""
  if not unique:
    return p * num_sampled
  return jnp.where(num_tries == num_sampled, p * num_sampled,
                   -jnp.expm1(num_tries * jnp.log1p(-p)))


def _draw_log_uniform(key: jax.Array, shape, range_max: int) -> jax.Array:
  # TF's LogUniformSampler::Sample: floor(exp(u * log(range_max + 1))) - 1.
  u = jax.random.uniform(key, shape, jnp.float32)
  k = jnp.floor(jnp.exp(u * math.log(range_max + 1.0))).astype(jnp.int32) - 1
  return jnp.clip(k, 0, range_max - 1)


def _draw_from_cdf(cdf_V: jax.Array):
  def draw(key, shape):
    u = jax.random.uniform(key, shape, jnp.float32) * cdf_V[-1]
    return jnp.minimum(jnp.searchsorted(cdf_V, u, side="right"), cdf_V.shape[0] - 1).astype(jnp.int32)
  return draw


def _unique_by_rejection(key: jax.Array, draw, num_sampled: int, range_max: int):
  """Draws until ``num_sampled`` distinct classes, as TF's ``unique=True``:
  returns them in order of first appearance and the number of draws made.
  Vectorised by blocks of draws; a block rarely falls short, then another follows."""
  if num_sampled > range_max:
    raise ValueError(f"unique sampling of {num_sampled} classes from {range_max}.")
  block = max(2 * num_sampled, num_sampled + 64)

  def cond(s):
    return s[1] < num_sampled

  def body(s):
    out, filled, tries, key = s
    key, k = jax.random.split(key)
    cand = draw(k, (block,))
    seen_before = jnp.any(cand[:, None] == out[None, :], axis=1)
    earlier = jnp.tril(cand[:, None] == cand[None, :], k=-1).any(axis=1)
    new = ~seen_before & ~earlier
    rank = filled + jnp.cumsum(new) - 1          # slot of each new class
    take = new & (rank < num_sampled)
    out = out.at[jnp.where(take, rank, num_sampled)].set(cand, mode="drop")
    # Draws used: up to and including the one that filled the last slot.
    done_at = jnp.argmax(take & (rank == num_sampled - 1))
    n_new = jnp.sum(take)
    used = jnp.where(filled + n_new >= num_sampled, done_at + 1, block)
    return out, filled + n_new, tries + used, key

  out0 = jnp.full((num_sampled,), -1, jnp.int32)
  out, _, tries, _ = jax.lax.while_loop(cond, body, (out0, jnp.int32(0), jnp.int32(0), key))
  return out, tries


def _sample(key, true_classes, num_sampled, unique, range_max, draw, probs_V) -> Sampled:
  if unique:
    sampled, tries = _unique_by_rejection(key, draw, num_sampled, range_max)
  else:
    sampled, tries = draw(key, (num_sampled,)), jnp.int32(num_sampled)
  p = jnp.asarray(probs_V, jnp.float32)
  return Sampled(sampled,
                 expected_count(p[true_classes], num_sampled, tries, unique),
                 expected_count(p[sampled], num_sampled, tries, unique), tries)


def log_uniform_sampler(key: jax.Array, true_classes: jax.Array, num_sampled: int,
                        unique: bool, range_max: int) -> Sampled:
  """TF's ``log_uniform_candidate_sampler`` (ids must be sorted by falling frequency)."""
  return _sample(key, true_classes, num_sampled, unique, range_max,
                 lambda k, s: _draw_log_uniform(k, s, range_max), log_uniform_probs(range_max))


def unigram_sampler(key: jax.Array, true_classes: jax.Array, num_sampled: int, unique: bool,
                    probs_V: np.ndarray) -> Sampled:
  """Samples from ``probs_V`` (e.g. :func:`unigram_probs`), TF's ``fixed_unigram`` semantics."""
  cdf = jnp.asarray(np.cumsum(probs_V), jnp.float32)
  return _sample(key, true_classes, num_sampled, unique, len(probs_V), _draw_from_cdf(cdf), probs_V)


def draw(key: jax.Array, shape, probs_V: np.ndarray | None, range_max: int) -> jax.Array:
  """Plain draws with replacement: log-uniform when ``probs_V`` is None, else from ``probs_V``."""
  if probs_V is None:
    return _draw_log_uniform(key, shape, range_max)
  return _draw_from_cdf(jnp.asarray(np.cumsum(probs_V), jnp.float32))(key, shape)
