"""The default train step, and its row-by-row update of an embedding table."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lib.train import optim
from lib.train.state import TrainState
from lib.train.step import make_train_step

V, W = 12, 3
SEEN = []  # the table shapes the loss is traced with


def _loss(params, batch, rng):
  """A toy embedding model: mean of a softmax over the rows ``batch['x']`` reads."""
  del rng
  SEEN.append(params["embed"].shape)
  h_BxTxW = params["embed"][batch["x"]]
  logits = jnp.tanh(h_BxTxW) @ params["out"]
  nll = -jax.nn.log_softmax(logits)[..., 0]
  return jnp.mean(nll), {"nll": jnp.sum(nll)}


def _state(tx, seed=0):
  k1, k2 = jax.random.split(jax.random.key(seed))
  params = {"embed": jax.random.normal(k1, (V, W)), "out": jax.random.normal(k2, (W, 5))}
  return TrainState(step=jnp.asarray(0), params=params, opt_state=tx.init(params))


def _run(row_tables, cfg, batches):
  tx, schedule = optim.make_optimizer(cfg, 10)
  step = jax.jit(make_train_step(_loss, tx, schedule, row_tables=row_tables))
  state, out = _state(tx), []
  for b in batches:
    state, m = step(state, b, jax.random.key(0))
    out.append({k: float(v.total / v.count) for k, v in m.items()})
  return state, out


@pytest.mark.parametrize("plateau", [0.0, 0.5])
def test_row_updates_equal_the_dense_step(plateau):
  # Repeated indices (7 three times) sum their rows' gradients, as the dense one does.
  batches = [{"x": jnp.asarray([[7, 1, 7], [2, 7, 11]])}, {"x": jnp.asarray([[0, 0, 5], [5, 3, 3]])}] * 3
  cfg = optim.default_config("sgd", 0.3, plateau_factor=plateau)
  SEEN.clear()
  dense, dense_m = _run({}, cfg, batches)
  assert set(SEEN) == {(V, W)}
  SEEN.clear()
  rows, rows_m = _run({"embed": "x"}, cfg, batches)
  assert set(SEEN) == {(6, W)}  # differentiated with respect to the 6 rows read
  for a, b in zip(jax.tree.leaves(dense), jax.tree.leaves(rows)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
  for a, b in zip(dense_m, rows_m):
    assert a == pytest.approx(b, rel=1e-6)
  untouched = np.asarray([v for v in range(V) if v not in (0, 1, 2, 3, 5, 7, 11)])
  initial = _state(optim.make_optimizer(cfg, 10)[0]).params["embed"]
  np.testing.assert_array_equal(rows.params["embed"][untouched], initial[untouched])


def test_only_plain_sgd_without_clipping_or_decay_scales_gradients():
  assert optim.scales_gradients(optim.default_config("sgd", 0.1, plateau_factor=0.5))
  assert not optim.scales_gradients(optim.default_config("sgd", 0.1, momentum=0.9))
  for key in ("clip_norm", "clip_value", "weight_decay"):
    assert not optim.scales_gradients(optim.default_config("sgd", 0.1, **{key: 1.0}))
    # a vmapped sweep over the key keeps it in the chain, even where it is 0
    assert not optim.scales_gradients(optim.default_config("sgd", 0.1), keep=(key,))
