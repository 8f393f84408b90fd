"""Mixed precision: bfloat16 compute, float32 parameters, scans and carries."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lib.nn import cells, linen, recurrence

B, T, D, H = 8, 12, 3, 16


def test_bfloat16_inputs_with_float32_weights_run():
  """The promoted type computes; carries stay float32 whatever the input's type."""
  x = jnp.ones((2, 5, D), jnp.bfloat16)
  for name in ("lstm", "rglru", "mlstm"):
    cell = cells.make(name, H)
    carry, y = jax.eval_shape(lambda k: recurrence.unroll(cell, cell.init(k, D), x),
                              jax.random.key(0))
    assert y.dtype == jnp.float32
    assert all(c.dtype == jnp.float32 for c in jax.tree.leaves(carry))


def test_bfloat16_compute_keeps_float32_carries_and_parameters():
  x = jax.random.normal(jax.random.key(0), (2, 5, D))
  for name in ("lstm", "lru", "rglru"):
    cell = cells.make(name, H, dtype="bfloat16")

    @jax.jit
    def run(key):
      p = cell.init(key, D)
      return p, recurrence.unroll(cell, p, x), recurrence.unroll(cells.make(name, H), p, x)[1]

    p, (carry, y), ref = run(jax.random.key(1))
    assert all(v.dtype == jnp.float32 for v in p.values())
    assert y.dtype == jnp.bfloat16
    assert all(jnp.finfo(c.dtype).bits >= 32 for c in jax.tree.leaves(carry))
    np.testing.assert_allclose(np.asarray(y, np.float32), ref, atol=0.05)


def test_flax_wrapper_takes_dtype_and_param_dtype():
  x = jnp.ones((2, 4, D))
  rnn = linen.RNN(cells.make("gru", H), dtype=jnp.bfloat16, param_dtype=jnp.float32)
  variables = rnn.init(jax.random.key(0), x)
  assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(variables))
  assert rnn.apply(variables, x).dtype == jnp.bfloat16


@pytest.mark.parametrize("name", ["lstm", "rglru"])
def test_bfloat16_cells_train_and_their_loss_falls(name):
  """A few Adam steps on a running-mean target, in bfloat16 compute."""
  cell = cells.make(name, H, dtype="bfloat16")
  x = jax.random.normal(jax.random.key(0), (B, T, D))
  target = jnp.cumsum(x[..., :1], 1) / jnp.arange(1, T + 1)[:, None]
  params = {"cell": cell.init(jax.random.key(1), D),
            "out": 0.1 * jax.random.normal(jax.random.key(2), (H, 1))}
  opt = optax.adam(1e-2)

  def loss(p):
    y = recurrence.unroll(cell, p["cell"], x)[1]
    return jnp.mean((y.astype(jnp.float32) @ p["out"] - target) ** 2)

  @jax.jit
  def step(p, s):
    value, g = jax.value_and_grad(loss)(p)
    updates, s = opt.update(g, s, p)
    return optax.apply_updates(p, updates), s, value

  state, losses = opt.init(params), []
  for _ in range(30):
    params, state, value = step(params, state)
    losses.append(float(value))
  assert np.isfinite(losses).all() and losses[-1] < 0.5 * losses[0], losses
