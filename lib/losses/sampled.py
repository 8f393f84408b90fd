"""Sampled losses for large output vocabularies: NCE as the notes trace TF's
``nce_loss``, word2vec's negative sampling, and the full softmax they approximate.

Shapes: ``B`` examples, ``D`` features, ``S`` sampled classes shared by a group
of examples (TF shares them across the whole batch: one group), ``G`` groups.
Every loss returns per-example values ``[B]``; the caller sums or averages
(the notes: ``tf.reduce_mean``; word2vec: a sum, one SGD step per pair).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from lib.losses.samplers import Sampled


def sigmoid_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """TF's stable ``max(x, 0) - x * z + log(1 + exp(-|x|))`` (= the notes'
  ``x - x * z + log(1 + exp(-x))``)."""
  return jnp.maximum(logits, 0) - logits * labels + jnp.log1p(jnp.exp(-jnp.abs(logits)))


def grouped_logits(h_GxBxD: jax.Array, true_w_GxBxD: jax.Array, sampled_w_GxSxD: jax.Array,
                   true_b_GxB=None, sampled_b_GxS=None, true_logq_GxB=None, sampled_logq_GxS=None
                   ) -> tuple[jax.Array, jax.Array]:
  """``(true_logits_GxB, sampled_logits_GxBxS)``: the notes' ``_compute_sampled_logits``
  per group (row-wise dot for the true class, a matmul for the shared samples,
  biases added, ``log Q`` subtracted when given)."""
  true = jnp.sum(h_GxBxD * true_w_GxBxD, -1)
  sampled = jnp.einsum("gbd,gsd->gbs", h_GxBxD, sampled_w_GxSxD)
  if true_b_GxB is not None:
    true = true + true_b_GxB
    sampled = sampled + sampled_b_GxS[:, None, :]
  if true_logq_GxB is not None:
    true = true - true_logq_GxB
    sampled = sampled - sampled_logq_GxS[:, None, :]
  return true, sampled


def binary_logistic(true_GxB: jax.Array, sampled_GxBxS: jax.Array,
                    sampled_weight: float = 1.0) -> jax.Array:
  """Sigmoid cross-entropy, label 1 for the true class and 0 for the samples,
  summed over each row: ``[G, B]``. ``sampled_weight`` scales the samples' term
  (word2vec's k negatives estimated from S shared samples: ``k / S``)."""
  pos = sigmoid_cross_entropy(true_GxB, jnp.ones_like(true_GxB))
  neg = sigmoid_cross_entropy(sampled_GxBxS, jnp.zeros_like(sampled_GxBxS)).sum(-1)
  return pos + sampled_weight * neg


def nce_loss(weights_VxD: jax.Array, biases_V: jax.Array, labels_B: jax.Array,
             inputs_BxD: jax.Array, sampled: Sampled, subtract_log_q: bool = True) -> jax.Array:
  """TF's ``nce_loss`` (``num_true=1``, no accidental-hit removal), per example ``[B]``:
  gather the true and sampled rows, ``logits - log(expected count)``, sigmoid
  cross-entropy summed over the ``1 + S`` columns. The notes average it over the batch."""
  s = sampled.sampled_S
  logq_t = jnp.log(sampled.true_expected_count) if subtract_log_q else None
  logq_s = jnp.log(sampled.sampled_expected_count_S) if subtract_log_q else None
  true, samp = grouped_logits(
      inputs_BxD[None], weights_VxD[labels_B][None], weights_VxD[s][None],
      biases_V[labels_B][None], biases_V[s][None],
      None if logq_t is None else logq_t[None], None if logq_s is None else logq_s[None])
  return binary_logistic(true, samp)[0]


def negative_sampling_loss(weights_VxD: jax.Array, labels_B: jax.Array, inputs_BxD: jax.Array,
                           sampled_S: jax.Array, negatives: int | None = None) -> jax.Array:
  """word2vec's objective, ``-log s(u_o.v) - k E_noise[log s(-u_n.v)]``, per example,
  with the noise expectation estimated from ``S`` samples shared by the batch
  (``negatives=k``; None: each sample counts once, as word2vec with k = S)."""
  S = sampled_S.shape[0]
  true, samp = grouped_logits(inputs_BxD[None], weights_VxD[labels_B][None],
                              weights_VxD[sampled_S][None])
  return binary_logistic(true, samp, 1.0 if negatives is None else negatives / S)[0]


def softmax_loss(weights_VxD: jax.Array, biases_V: jax.Array | None, labels_B: jax.Array,
                 inputs_BxD: jax.Array) -> jax.Array:
  """Exact softmax cross-entropy over all ``V`` classes, per example (the check
  that sampled losses approximate; affordable for small vocabularies)."""
  logits = inputs_BxD @ weights_VxD.T
  if biases_V is not None:
    logits = logits + biases_V
  return jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, labels_B[:, None], 1)[:, 0]
