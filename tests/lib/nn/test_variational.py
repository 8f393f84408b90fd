import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lib.nn import gradcheck, variational as vi


def _mean_tree(key, scale=0.5):
  k1, k2, k3 = jax.random.split(key, 3)
  return {"w": scale * jax.random.normal(k1, (4, 3)), "u": scale * jax.random.normal(k2, (3, 3)),
          "b": scale * jax.random.normal(k3, (3,))}


def _one_example(p, x_T4):
  """A tiny single-example RNN read through vi.matmul (works for every sampling mode)."""
  def step(h, x_t):
    h = jnp.tanh(vi.matmul(x_t, p["w"]) + vi.matmul(h, p["u"]) + p["b"])
    return h, None
  h, _ = jax.lax.scan(step, jnp.zeros(3), x_T4)
  return h


@pytest.mark.slow
@pytest.mark.parametrize("mode", vi.SIGMA_MODES)
def test_closed_form_kl_matches_monte_carlo(mode):
  mean = _mean_tree(jax.random.key(0))
  post = vi.init_posterior(mean, math.log(0.3), mode)
  if mode == "weight":  # different sigmas per weight
    post["log_sigma"] = jax.tree.map(
        lambda m: jnp.log(0.2 + 0.5 * jax.random.uniform(jax.random.key(m.size), m.shape)), mean)
  prior = vi.Gaussian(sigma=1.5, mu=0.1)
  closed = float(jax.jit(lambda p: vi.kl_gaussian(p, prior))(post))  # jitted: one compile
  mc = float(jax.jit(lambda p, k: vi.kl_monte_carlo(p, prior, k, num_samples=20_000))(
      post, jax.random.key(1)))
  assert closed > 0
  assert mc == pytest.approx(closed, rel=0.02)
  auto = jax.jit(lambda p, k: vi.kl(p, prior, k))(post, jax.random.key(2))
  assert float(auto) == pytest.approx(closed)  # auto -> closed


def test_kl_of_identical_distributions_is_zero():
  post = vi.init_posterior({"w": jnp.zeros((5,))}, math.log(2.0), "shared")
  assert float(vi.kl_gaussian(post, vi.Gaussian(sigma=2.0))) == pytest.approx(0.0, abs=1e-5)


@pytest.mark.slow
def test_mixture_prior_kl_by_monte_carlo_is_consistent():
  post = vi.init_posterior(_mean_tree(jax.random.key(3), 0.1), math.log(0.05), "weight")
  prior = vi.ScaleMixture(0.25, 1.0, math.exp(-6))
  kl = jax.jit(lambda k: vi.kl(post, prior, k, num_samples=4000))
  a, b = float(kl(jax.random.key(4))), float(kl(jax.random.key(5)))
  assert a == pytest.approx(b, rel=0.01)
  # log_prob of the mixture is the log of the weighted density sum.
  w = jnp.asarray([0.0, 0.01, 1.3])
  dens = lambda s: np.exp(-0.5 * (np.asarray(w) / s) ** 2) / (s * np.sqrt(2 * np.pi))  # noqa: E731
  want = np.log(0.25 * dens(1.0) + 0.75 * dens(math.exp(-6)))
  np.testing.assert_allclose(prior.log_prob(w), want, rtol=1e-5)
  with pytest.raises(ValueError, match="closed-form KL needs a Gaussian"):
    vi.kl(post, prior, jax.random.key(0), form="closed")


@pytest.mark.slow
def test_per_example_vmap_equals_a_loop_over_examples():
  post = vi.init_posterior(_mean_tree(jax.random.key(0)), math.log(0.1))
  x_BxTx4 = jax.random.normal(jax.random.key(1), (5, 7, 4))
  weights, axes = vi.draw(post, jax.random.key(2), 5, "example")
  batched = vi.per_example(_one_example, weights, axes, x_BxTx4)
  looped = jnp.stack([_one_example(jax.tree.map(lambda w: w[b], weights), x_BxTx4[b])
                      for b in range(5)])
  np.testing.assert_allclose(batched, looped, rtol=1e-5, atol=1e-6)
  # The examples really got different weights.
  assert not np.allclose(weights["u"][0], weights["u"][1])


@pytest.mark.slow
def test_same_key_same_output_different_key_different_output():
  post = vi.init_posterior(_mean_tree(jax.random.key(0)), math.log(0.1))
  x = jax.random.normal(jax.random.key(1), (4, 6, 4))

  def out(mode, seed):
    w, ax = vi.draw(post, jax.random.key(seed), 4, mode)
    return np.asarray(vi.per_example(_one_example, w, ax, x))

  for mode in ("example", "minibatch", "flipout"):
    np.testing.assert_array_equal(out(mode, 7), out(mode, 7))
    assert not np.allclose(out(mode, 7), out(mode, 8))
  np.testing.assert_array_equal(out("mean", 7), out("mean", 8))  # the mean ignores the key


def test_samples_have_the_posterior_moments():
  post = vi.init_posterior({"w": jnp.asarray([1.0, -2.0])}, math.log(0.3), "shared")
  s = np.asarray(vi.sample_per_example(post, jax.random.key(0), 20_000)["w"])
  np.testing.assert_allclose(s.mean(0), [1.0, -2.0], atol=0.01)
  np.testing.assert_allclose(s.std(0), [0.3, 0.3], rtol=0.02)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["example", "minibatch", "flipout"])
def test_gradient_reaches_the_shared_log_sigma(mode):
  with jax.enable_x64(True):
    mean = jax.tree.map(lambda m: m.astype(jnp.float64), _mean_tree(jax.random.key(0)))
    post = vi.init_posterior(mean, math.log(0.2))
    post["log_sigma"] = post["log_sigma"].astype(jnp.float64)
    x = jax.random.normal(jax.random.key(1), (3, 5, 4), jnp.float64)
    key = jax.random.key(2)

    def loss(p):  # reparameterized: a deterministic function of p for a fixed key
      w, ax = vi.draw(p, key, 3, mode)
      return jnp.sum(vi.per_example(_one_example, w, ax, x) ** 2) + vi.kl_gaussian(
          p, vi.Gaussian(10.0))

    g = jax.grad(loss)(post)
    assert abs(float(g["log_sigma"])) > 1e-6
    report = gradcheck.check_grads(loss, post, eps=1e-6, threshold=1e-5)
  assert report.ok, str(report)


@pytest.mark.slow
def test_flipout_has_the_mean_and_variance_of_independent_samples():
  D, H, n = 4, 3, 64
  mean = {"w": jax.random.normal(jax.random.key(0), (D, H))}
  post = vi.init_posterior(mean, 0.0, "weight")
  post["log_sigma"] = {"w": jnp.log(jnp.linspace(0.1, 0.8, D * H).reshape(D, H))}
  x = jnp.asarray([1.0, -0.5, 2.0, 0.3])

  def batch(key):  # n examples sharing one noise draw, their own signs
    w, ax = vi.flipout_weights(post, key, n)
    return vi.per_example(lambda p, xb: vi.matmul(xb, p["w"]), w, ax, jnp.tile(x, (n, 1)))

  # Over many batches (fresh noise each), every example's output has the moments of x @ W_b.
  batches = np.asarray(jax.jit(jax.vmap(batch))(jax.random.split(jax.random.key(0), 4000)))
  outs = batches.reshape(-1, H)
  want_mean = np.asarray(x @ mean["w"])
  want_var = np.asarray((x ** 2) @ jnp.exp(2 * post["log_sigma"]["w"]))
  np.testing.assert_allclose(outs.mean(0), want_mean, atol=4 * np.sqrt(want_var / len(outs)).max())
  np.testing.assert_allclose(outs.var(0), want_var, rtol=0.1)
  # Within a batch the signs decorrelate the examples although they share one noise
  # draw: the spread across the batch has, on average, the same variance.
  within = batches.var(axis=1).mean(0) * n / (n - 1)
  np.testing.assert_allclose(within, want_var, rtol=0.1)
  w, _ = vi.flipout_weights(post, jax.random.key(0), 8)
  assert set(np.unique(np.asarray(w["w"].sign_in)).tolist()) == {-1.0, 1.0}


def test_flipout_matmul_equals_the_explicit_perturbed_matrix():
  k = jax.random.split(jax.random.key(0), 4)
  view = vi.Flipout(jax.random.normal(k[0], (4, 3)), jax.random.normal(k[1], (4, 3)),
                    jnp.sign(jax.random.normal(k[2], (4,))), jnp.sign(jax.random.normal(k[3], (3,))))
  x = jnp.arange(4.0)
  w_b = view.mean + view.delta * jnp.outer(view.sign_in, view.sign_out)
  np.testing.assert_allclose(vi.matmul(x, view), x @ w_b, rtol=1e-5)


def test_sigma_modes_shapes_and_errors():
  mean = _mean_tree(jax.random.key(0))
  assert jnp.ndim(vi.init_posterior(mean, 0.0, "shared")["log_sigma"]) == 0
  assert jax.tree.map(jnp.shape, vi.init_posterior(mean, 0.0, "group")["log_sigma"]) == \
      {"w": (), "u": (), "b": ()}
  assert jax.tree.map(jnp.shape, vi.init_posterior(mean, 0.0, "weight")["log_sigma"]) == \
      jax.tree.map(jnp.shape, mean)
  assert vi.num_weights(mean) == 12 + 9 + 3
  with pytest.raises(ValueError, match="sigma mode"):
    vi.init_posterior(mean, 0.0, "layer")
  with pytest.raises(ValueError, match="sampling mode"):
    vi.draw(vi.init_posterior(mean), jax.random.key(0), 2, "each")


def test_the_closed_form_kl_needs_no_key_and_the_monte_carlo_one_says_so():
  post = vi.init_posterior({"w": jnp.zeros((3, 2))}, log_sigma=math.log(0.5))
  prior = vi.make_prior("gaussian", sigma=1.0)
  # KL(N(0, 0.25) || N(0, 1)) per weight: log(1 / 0.5) + 0.25 / 2 - 1 / 2
  assert float(vi.kl(post, prior)) == pytest.approx(6 * (math.log(2.0) + 0.125 - 0.5), rel=1e-5)
  with pytest.raises(ValueError, match="needs a key: kl\\(post, prior, key\\)"):
    vi.kl(post, vi.make_prior("mixture"))


def test_elbo_loss_weighs_the_kl_once_per_data_set():
  """Per training example: the minibatch's mean NLL plus KL / N (N = 1,000 here), so
  the data set's -ELBO is N times it."""
  post = vi.init_posterior({"w": jnp.zeros((3, 2))}, log_sigma=math.log(0.5))
  prior = vi.make_prior("gaussian", sigma=1.0)
  kl = float(vi.kl(post, prior))
  loss = vi.elbo_loss(jnp.float32(38.0), post, prior, 1000, batch_size=10)
  assert float(loss) == pytest.approx(3.8 + kl / 1000, rel=1e-6)
  half = vi.elbo_loss(jnp.float32(38.0), post, prior, 1000, batch_size=10, kl_weight=0.5)
  assert float(half) == pytest.approx(3.8 + 0.5 * kl / 1000, rel=1e-6)
