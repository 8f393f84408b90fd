"""NCE against a numpy transcription of the notes' trace of ``tf.nn.nce_loss``."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lib.losses import sampled as sampled_losses, samplers as cs


def notes_nce_numpy(nce_weights, nce_biases, train_labels, embed, sampled, true_expected_count,
                    sampled_expected_count):
  """The notes' steps, line by line (batch 100 -> B, num_sampled 64 -> S)."""
  sampled_w, sampled_b = nce_weights[sampled], nce_biases[sampled]
  true_w, true_b = nce_weights[train_labels], nce_biases[train_labels]
  sampled_logits = np.matmul(embed, sampled_w.T)          # [B, S]
  sampled_logits += sampled_b
  dots_as_matrix = np.multiply(embed, true_w)             # [B, D]
  true_logits = dots_as_matrix.sum(1, keepdims=True)      # [B, 1]
  true_logits += true_b[:, None]
  true_logits -= np.log(true_expected_count)
  sampled_logits -= np.log(sampled_expected_count)
  out_logits = np.concatenate([true_logits, sampled_logits], 1)
  out_labels = np.concatenate([np.ones_like(true_logits), np.zeros_like(sampled_logits)], 1)
  x, z = out_logits, out_labels
  sampled_losses = x - (x * z) + np.log(1 + np.exp(-x))
  loss_nce = sampled_losses.sum(1)
  return loss_nce, np.mean(loss_nce)


@pytest.mark.slow
def test_nce_matches_the_notes_computation_on_fixed_samples():
  rng = np.random.default_rng(0)
  V, D, B, S = 500, 128, 100, 64
  w = rng.normal(0, 1 / np.sqrt(D), (V, D)).astype(np.float64)
  b = rng.normal(0, 0.1, V)
  labels = rng.integers(0, V, B)
  embed = rng.uniform(-1, 1, (B, D))
  samp = cs.log_uniform_sampler(jax.random.key(3), jnp.asarray(labels), S, True, V)
  s, te, se = (np.asarray(samp.sampled_S), np.asarray(samp.true_expected_count, np.float64),
               np.asarray(samp.sampled_expected_count_S, np.float64))
  ref_rows, ref_loss = notes_nce_numpy(w, b, labels, embed, s, te[:, None], se)
  with jax.enable_x64(True):
    got = sampled_losses.nce_loss(jnp.asarray(w), jnp.asarray(b), jnp.asarray(labels),
                                  jnp.asarray(embed), samp._replace(
                                      true_expected_count=jnp.asarray(te),
                                      sampled_expected_count_S=jnp.asarray(se)))
    np.testing.assert_allclose(np.asarray(got), ref_rows, rtol=1e-10)
    assert float(jnp.mean(got)) == pytest.approx(ref_loss, rel=1e-10)


def test_sigmoid_cross_entropy_is_stable_where_the_notes_formula_overflows():
  x = jnp.array([-200.0, -5.0, 0.0, 5.0, 200.0])
  for z in (0.0, 1.0):
    got = sampled_losses.sigmoid_cross_entropy(x, jnp.full_like(x, z))
    assert bool(jnp.all(jnp.isfinite(got)))
    ref = np.asarray(x) * (1 - z) + np.logaddexp(0, -np.asarray(x, np.float64))
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_negative_sampling_is_word2vecs_objective():
  rng = np.random.default_rng(1)
  V, D, B, S = 50, 8, 6, 10
  w, h = rng.normal(size=(V, D)), rng.normal(size=(B, D))
  y, s = rng.integers(0, V, B), rng.integers(0, V, S)
  logsig = lambda t: -np.logaddexp(0, -t)
  ref = -logsig((h * w[y]).sum(1)) - (5 / S) * logsig(-(h @ w[s].T)).sum(1)
  got = sampled_losses.negative_sampling_loss(jnp.asarray(w, jnp.float32), jnp.asarray(y),
                                              jnp.asarray(h, jnp.float32), jnp.asarray(s), 5)
  np.testing.assert_allclose(got, ref, rtol=1e-5)


def test_softmax_loss_is_cross_entropy_over_all_classes():
  rng = np.random.default_rng(2)
  w, b, h = rng.normal(size=(30, 4)), rng.normal(size=30), rng.normal(size=(5, 4))
  y = rng.integers(0, 30, 5)
  logits = h @ w.T + b
  ref = -(logits[np.arange(5), y] - np.log(np.exp(logits).sum(1)))
  got = sampled_losses.softmax_loss(*(jnp.asarray(a, jnp.float32) for a in (w, b)), jnp.asarray(y),
                                    jnp.asarray(h, jnp.float32))
  np.testing.assert_allclose(got, ref, rtol=1e-5)


@pytest.mark.slow
def test_nce_without_log_q_is_negative_sampling_plus_biases():
  rng = np.random.default_rng(3)
  V, D, B, S = 40, 6, 5, 7
  w, h = jnp.asarray(rng.normal(size=(V, D)), jnp.float32), jnp.asarray(rng.normal(size=(B, D)), jnp.float32)
  y = jnp.asarray(rng.integers(0, V, B))
  samp = cs.log_uniform_sampler(jax.random.key(0), y, S, False, V)
  nce = sampled_losses.nce_loss(w, jnp.zeros(V), y, h, samp, subtract_log_q=False)
  neg = sampled_losses.negative_sampling_loss(w, y, h, samp.sampled_S)
  np.testing.assert_allclose(nce, neg, rtol=1e-6)
