"""The variational toolkit over Flax Linen models: flipout on nn.Dense has the
right per-example mean and variance; layers it cannot perturb are named."""
import flax.linen as fnn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lib.errors import ConfigError
from lib.nn import cells, flax_variational, linen, variational

D, H, SIGMA = 6, 3, 0.3


def _dense_post():
  model = fnn.Dense(H)
  params = model.init(jax.random.key(0), jnp.ones((D,)))["params"]
  params = {"kernel": params["kernel"], "bias": jnp.arange(H, dtype=jnp.float32)}
  return model, variational.init_posterior(params, np.log(SIGMA), mode="shared")


@pytest.mark.parametrize("mode", ["flipout", "example"])
def test_per_example_outputs_have_the_posterior_mean_and_variance(mode):
  model, post = _dense_post()
  x_D = jnp.linspace(-1.0, 1.0, D)
  x_BxD = jnp.stack([x_D, x_D])  # one input twice: the two examples' perturbations

  def outputs(key):
    weights, axes = variational.draw(post, key, 2, mode)
    return flax_variational.apply(model, weights, axes, x_BxD)

  y_NxBxH = jax.jit(jax.vmap(outputs))(jax.random.split(jax.random.key(1), 4000))
  mean_H = x_D @ post["mean"]["kernel"] + post["mean"]["bias"]
  var = SIGMA ** 2 * (jnp.sum(x_D ** 2) + 1.0)  # kernel noise plus bias noise, per output
  np.testing.assert_allclose(y_NxBxH.mean(0), jnp.stack([mean_H, mean_H]),
                             atol=4 * np.sqrt(var / 4000))
  np.testing.assert_allclose(y_NxBxH.var(0), jnp.full((2, H), var), rtol=0.1)
  # Per-example: the two copies of x are perturbed independently (uncorrelated).
  a, b = y_NxBxH[:, 0] - mean_H, y_NxBxH[:, 1] - mean_H
  np.testing.assert_allclose((a * b).mean(0) / var, 0.0, atol=0.1)
  assert float(jnp.abs(a - b).mean()) > 0.1


class Classifier(fnn.Module):
  """rnnlab's GRU inside a Flax model, a Dense head: one example (T x D)."""

  @fnn.compact
  def __call__(self, x_TxD):
    h_TxH = linen.RNN(cells.GRU(hidden=4))(x_TxD[None])[0]
    return fnn.Dense(2)(h_TxH[-1])


def test_flipout_runs_through_rnnlab_cells_in_a_flax_model_and_trains():
  model = Classifier()
  x_BxTxD = jax.random.normal(jax.random.key(2), (5, 7, 3))
  params = model.init(jax.random.key(0), x_BxTxD[0])["params"]
  tiny = variational.init_posterior(params, -30.0, mode="group")
  weights, axes = variational.draw(tiny, jax.random.key(3), 5, "flipout")
  y = flax_variational.apply(model, weights, axes, x_BxTxD)
  y_mean = jax.vmap(lambda x: model.apply({"params": params}, x))(x_BxTxD)
  np.testing.assert_allclose(y, y_mean, atol=1e-5)  # sigma -> 0: the posterior mean

  post = variational.init_posterior(params, np.log(0.1), mode="group")

  def loss(p, key):
    w, ax = variational.draw(p, key, 5, "flipout")
    return jnp.sum(flax_variational.apply(model, w, ax, x_BxTxD) ** 2)

  g = jax.grad(loss)(post, jax.random.key(4))
  assert float(jnp.abs(g["log_sigma"]["RNN_0"]["w_rec"])) > 0  # noise reaches the cell
  assert float(jnp.abs(g["log_sigma"]["Dense_0"]["kernel"])) > 0


class Embedded(fnn.Module):
  @fnn.compact
  def __call__(self, ids_T):
    return fnn.Dense(2)(fnn.Embed(10, 4, name="tokens")(ids_T).mean(0))


def test_a_layer_flipout_cannot_perturb_is_named():
  model = Embedded()
  ids = jnp.zeros((3, 5), jnp.int32)
  params = model.init(jax.random.key(0), ids[0])["params"]
  post = variational.init_posterior(params)
  weights, axes = variational.draw(post, jax.random.key(1), 3, "flipout")
  with pytest.raises(ConfigError, match=r"layer 'tokens' \(Embed\).*\['embedding'\].*'example'"):
    flax_variational.apply(model, weights, axes, ids)
  weights, axes = variational.draw(post, jax.random.key(1), 3, "example")
  assert flax_variational.apply(model, weights, axes, ids).shape == (3, 2)


def test_an_nnx_model_gets_per_example_weights_and_flipout_is_refused_by_name():
  from flax import nnx as fnnx
  model = fnnx.Linear(D, H, rngs=fnnx.Rngs(0))
  graphdef, params, rest = fnnx.split(model, fnnx.Param, ...)
  post = variational.init_posterior(params, np.log(SIGMA), mode="shared")
  x_D = jnp.linspace(-1.0, 1.0, D)
  x_BxD = jnp.stack([x_D, x_D])

  def outputs(key):
    weights, axes = variational.draw(post, key, 2, "example")
    return flax_variational.apply_nnx(graphdef, weights, axes, x_BxD, rest=(rest,))

  y_NxBxH = jax.jit(jax.vmap(outputs))(jax.random.split(jax.random.key(1), 4000))
  mean_H = x_D @ params["kernel"][...] + params["bias"][...]
  var = SIGMA ** 2 * (jnp.sum(x_D ** 2) + 1.0)
  np.testing.assert_allclose(y_NxBxH.mean(0), jnp.stack([mean_H, mean_H]),
                             atol=4 * np.sqrt(var / 4000))
  np.testing.assert_allclose(y_NxBxH.var(0), jnp.full((2, H), var), rtol=0.1)
  weights, axes = variational.draw(post, jax.random.key(2), 2, "flipout")
  with pytest.raises(ConfigError, match=r"flipout: the NNX parameters \['kernel'\]"):
    flax_variational.apply_nnx(graphdef, weights, axes, x_BxD, rest=(rest,))
