"""The sparse SGD step is SGD on the dense loss; the rows form is TF's NCE."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lib.losses import sampled as sampled_losses
from lib.nn import word2vec
from lib.train import sparse_sgd
from lib.train.state import TrainState

V, D = 40, 8


def _batch(B, seed=0, pad=0):
  rng = np.random.default_rng(seed)
  m = np.ones(B, np.float32)
  if pad:
    m[-pad:] = 0
  return {"input": jnp.asarray(rng.integers(0, V, B), jnp.int32),
          "target": jnp.asarray(rng.integers(0, V, B), jnp.int32), "mask": jnp.asarray(m)}


def _params(spec, seed=0):
  p = word2vec.init_params(spec, jax.random.key(seed))
  # Non-zero output rows so that every gradient is non-trivial.
  p["out"] = jax.random.normal(jax.random.key(seed + 1), (V, D)) * 0.3
  return p


SPECS = {
    "neg": word2vec.Spec(V, D, loss="neg", sampler="unigram", num_sampled=6, negatives=5,
                         group_size=4),
    "nce": word2vec.Spec(V, D, loss="nce", sampler="log_uniform", num_sampled=6, group_size=8,
                         unique=True, reduce="mean", init="notes"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", SPECS)
def test_sparse_update_is_sgd_on_the_dense_loss(name):
  spec = SPECS[name]
  noise = word2vec.Noise(spec, np.arange(V, 0, -1))
  params, batch, key, lr = _params(spec), _batch(16, pad=3), jax.random.key(5), 0.1
  loss = jax.jit(lambda p: word2vec.loss(spec, noise, p, batch, key))  # jitted: one compile
  grads = jax.jit(jax.grad(lambda p: loss(p)[0]))(params)
  want = jax.tree.map(lambda p, g: p - lr * g, params, grads)
  samples = word2vec.draw_samples(spec, noise, key, batch["target"])  # what loss() draws
  got, total = jax.jit(lambda p: word2vec.sparse_update(spec, p, batch, samples, lr))(params)
  for k in params:
    np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6)
  loss_sum = loss(params)[1]["loss"].total
  assert float(total) == pytest.approx(float(loss_sum), rel=1e-5)
  # Padded pairs change nothing: their rows get no update.
  assert int(batch["mask"].sum()) == 13


@pytest.mark.slow
def test_nce_rows_form_is_tfs_nce_loss_averaged():
  spec = dataclasses.replace(SPECS["nce"], group_size=16)  # one group: TF shares samples
  noise = word2vec.Noise(spec, None)
  params, batch, key = _params(spec), _batch(16), jax.random.key(2)
  objective, _ = jax.jit(lambda p: word2vec.loss(spec, noise, p, batch, key))(params)

  @jax.jit
  def reference(params):
    samples = noise.sample(key, batch["target"][None])
    flat = samples._replace(sampled_S=samples.sampled_S[0],
                            true_expected_count=samples.true_expected_count[0],
                            sampled_expected_count_S=samples.sampled_expected_count_S[0])
    return sampled_losses.nce_loss(params["out"], params["bias"], batch["target"],
                                   params["in"][batch["input"]], flat)
  ref = reference(params)
  assert float(objective) == pytest.approx(float(jnp.mean(ref)), rel=1e-5)


@pytest.mark.slow
def test_scanned_step_equals_minibatches_one_by_one():
  spec = SPECS["neg"]
  noise = word2vec.Noise(spec, np.arange(V, 0, -1))
  sched = lambda s: 0.1 * (1.0 - s / 10.0)
  step = sparse_sgd.make_sparse_step(spec, noise, minibatch=8)(None, sched)
  params = _params(spec)
  state = TrainState(step=jnp.asarray(2), params=params, opt_state=())
  batch = _batch(24, seed=3)
  rng = jax.random.key(9)
  new, metrics = jax.jit(step)(state, batch, rng)
  p = params
  update = jax.jit(lambda p, mb, smp, lr: word2vec.sparse_update(spec, p, mb, smp, lr))
  drawn = word2vec.draw_samples(spec, noise, rng, batch["target"].reshape(3, 8))
  for j in range(3):
    mb = {k: v[8 * j:8 * (j + 1)] for k, v in batch.items()}
    p, _ = update(p, mb, jax.tree.map(lambda a: a[j], drawn), sched(2 + j / 3))
  for k in p:
    np.testing.assert_allclose(new.params[k], p[k], rtol=1e-5, atol=1e-7)
  assert int(new.step) == 3 and float(metrics["pairs"].total) == 24


def test_bad_specs_are_clear_errors():
  with pytest.raises(ValueError, match="loss must be"):
    word2vec.Spec(V, D, loss="hinge")
  with pytest.raises(ValueError, match="groups of"):
    word2vec.rows_loss(word2vec.Spec(V, D, group_size=3), {"h": jnp.zeros((8, D)),
                                                          "wt": jnp.zeros((8, D))}, None, jnp.ones(8))
