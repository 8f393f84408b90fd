"""Each cell against a plain numpy loop written from its equations."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lib.nn import cells, recurrence


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def numpy_unroll(name, p, x):
  """Reference implementations, one time step at a time."""
  p = {k: np.asarray(v, np.float64) for k, v in p.items()}
  B, T, _ = x.shape
  H = p["w_rec"].shape[0]
  h, c, ys = np.zeros((B, H)), np.zeros((B, H)), []
  for t in range(T):
    xt = x[:, t]
    if name == "linear":
      h = xt @ p["w_x"] + h @ p["w_rec"]
    elif name == "simple":
      h = np.tanh(xt @ p["w_x"] + h @ p["w_rec"] + p["b"])
    elif name == "lstm":
      W, U, b = p["w_x"], p["w_rec"], p["b"]
      blk = lambda M, k: M[..., k * H:(k + 1) * H]
      i = sigmoid(xt @ blk(W, 0) + h @ blk(U, 0) + blk(b, 0))
      f = sigmoid(xt @ blk(W, 1) + h @ blk(U, 1) + blk(b, 1))
      z = np.tanh(xt @ blk(W, 2) + h @ blk(U, 2) + blk(b, 2))
      o = sigmoid(xt @ blk(W, 3) + h @ blk(U, 3) + blk(b, 3))
      c = f * c + i * z
      h = o * np.tanh(c)
    elif name == "gru":
      W, U, b, bu = p["w_x"], p["w_rec"], p["b"], p["b_rec"]
      blk = lambda M, k: M[..., k * H:(k + 1) * H]
      r = sigmoid(xt @ blk(W, 0) + blk(b, 0) + h @ blk(U, 0) + blk(bu, 0))
      z = sigmoid(xt @ blk(W, 1) + blk(b, 1) + h @ blk(U, 1) + blk(bu, 1))
      n = np.tanh(xt @ blk(W, 2) + blk(b, 2) + r * (h @ blk(U, 2) + blk(bu, 2)))
      h = (1 - z) * n + z * h
    ys.append(h)
  return h, np.stack(ys, 1)


def random_params(cell, key, D):
  """Non-zero biases too, so a misplaced bias cannot hide."""
  p = cell.init(key, D)
  return {k: v + 0.1 * jax.random.normal(jax.random.fold_in(key, i), v.shape)
          for i, (k, v) in enumerate(sorted(p.items()))}


@pytest.mark.parametrize("name", ["linear", "simple", "lstm", "gru"])
@pytest.mark.parametrize("fast_grad", [True, False])
def test_cell_matches_numpy_loop(name, fast_grad):
  B, T, D, H = 3, 6, 4, 5
  cell = cells.make(name, H)
  p = random_params(cell, jax.random.key(0), D)
  x = np.random.default_rng(0).standard_normal((B, T, D)).astype(np.float32)
  carry, y = recurrence.unroll(cell, p, jnp.asarray(x), fast_grad=fast_grad)
  h_ref, y_ref = numpy_unroll(name, p, x)
  np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(cell.output(carry), h_ref, rtol=1e-4, atol=1e-5)


def test_linear_cell_is_notes_003():
  """s_t = x_t*w_x + s_{t-1}*w_rec with w = 1 counts the ones."""
  cell = cells.linear(1)
  p = {"w_x": jnp.ones((1, 1)), "w_rec": jnp.ones((1, 1))}
  x = jnp.asarray([[0, 1, 0, 0, 0, 0, 0, 0, 0, 1], [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]],
                  jnp.float32)[..., None]
  carry, _ = recurrence.unroll(cell, p, x)
  np.testing.assert_allclose(carry[:, 0], [2.0, 3.0])


def test_lstm_gate_layout_and_forget_bias():
  cell = cells.LSTM(7)
  p = cell.init(jax.random.key(0), 3)
  assert p["w_x"].shape == (3, 28) and p["w_rec"].shape == (7, 28) and p["b"].shape == (28,)
  np.testing.assert_array_equal(p["b"][7:14], 1.0)   # f block
  np.testing.assert_array_equal(p["b"][:7], 0.0)     # i block


def test_inv_sqrt_fan_in_bounds():
  from lib.nn import initializers
  w = initializers.uniform_inv_sqrt_fan_in()(jax.random.key(0), (400, 50))
  assert float(jnp.max(jnp.abs(w))) <= 1 / 20 and float(jnp.max(jnp.abs(w))) > 0.045
  with pytest.raises(ValueError, match="Unknown initializer"):
    initializers.get("nope")


def test_unknown_cell_is_a_clear_error():
  with pytest.raises(ValueError, match="expected one of"):
    cells.make("transformer", 4)
