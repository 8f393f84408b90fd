"""rnnlab's cells as Flax Linen modules: same numbers as the plain functions,
and flax.linen.RNN's call conventions."""
import flax.linen as fnn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lib.nn import cells, flax_convert, linen, recurrence, stacks

B, T, D, H = 3, 6, 4, 5
LENGTHS = jnp.array([6, 3, 1])


def _data(seed=0):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.standard_normal((B, T, D)), jnp.float32)
  y = jnp.asarray(rng.standard_normal((B, 2)), jnp.float32)
  return x, y


class Model(fnn.Module):
  """LSTM then GRU (rnnlab cells), mean over real steps, a Flax Dense head."""

  @fnn.compact
  def __call__(self, x_BxTxD, lengths_B):
    h = linen.RNN(cells.LSTM(hidden=H), name="lstm")(x_BxTxD, seq_lengths=lengths_B)
    h = linen.RNN(cells.GRU(hidden=H), name="gru")(h, seq_lengths=lengths_B)
    return fnn.Dense(2, name="head")(h.sum(1) / lengths_B[:, None])


def plain(params, x_BxTxD, lengths_B):
  """The same model written with the plain functions of lib.nn."""
  mask = linen.lengths_to_mask(lengths_B, x_BxTxD.shape[1])
  _, h = recurrence.unroll(cells.LSTM(hidden=H), params["lstm"], x_BxTxD, mask_BxT=mask)
  _, h = recurrence.unroll(cells.GRU(hidden=H), params["gru"], h, mask_BxT=mask)
  head = params["head"]
  return (h.sum(1) / lengths_B[:, None]) @ head["kernel"] + head["bias"]


def test_linen_model_matches_plain_functions_and_trains_under_jit():
  x, y = _data()
  model = Model()
  params = model.init(jax.random.key(0), x, LENGTHS)["params"]
  assert set(params["lstm"]) == {"w_x", "w_rec", "b"}  # the cell's own parameter names
  loss_flax = lambda p: jnp.sum((model.apply({"params": p}, x, LENGTHS) - y) ** 2)
  loss_plain = lambda p: jnp.sum((plain(p, x, LENGTHS) - y) ** 2)
  np.testing.assert_allclose(loss_flax(params), loss_plain(params), rtol=1e-6)
  g_flax, g_plain = jax.grad(loss_flax)(params), jax.grad(loss_plain)(params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               g_flax, g_plain)

  opt = optax.adam(1e-2)

  @jax.jit
  def step(p, s):
    loss, g = jax.value_and_grad(loss_flax)(p)
    u, s = opt.update(g, s, p)
    return optax.apply_updates(p, u), s, loss

  p, s, losses = params, opt.init(params), []
  for _ in range(5):
    p, s, loss = step(p, s)
    losses.append(float(loss))
  assert losses[-1] < losses[0]


@pytest.mark.parametrize("reverse,keep_order", [(False, False), (True, True), (True, False)])
def test_rnn_follows_flax_conventions(reverse, keep_order):
  """Converted parameters give flax.linen.RNN(LSTMCell)'s outputs at real steps,
  in Flax's order for reverse/keep_order, and the same final carry."""
  x, _ = _data(1)
  flax_rnn = fnn.RNN(fnn.LSTMCell(H), return_carry=True)
  fv = flax_rnn.init(jax.random.key(0), x)
  kw = dict(seq_lengths=LENGTHS, reverse=reverse, keep_order=keep_order)
  (c_f, h_f), y_f = flax_rnn.apply(fv, x, **kw)
  ours = {"params": flax_convert.lstm_from_flax(fv["params"]["cell"])}
  carry, y = linen.RNN(cells.LSTM(hidden=H), return_carry=True).apply(ours, x, **kw)
  real = linen.lengths_to_mask(LENGTHS, T)[..., None]
  np.testing.assert_allclose(y * real, y_f * real, atol=1e-6)
  np.testing.assert_array_equal(y * (1 - real), 0.0)  # rnnlab zeroes padded outputs
  np.testing.assert_allclose(flax_convert.lstm_carry_to_flax(carry), (c_f, h_f), atol=1e-6)


def test_time_major_extra_batch_axes_and_initial_carry():
  x, _ = _data(2)
  cell = cells.GRU(hidden=H)
  rnn = linen.RNN(cell, return_carry=True)
  v = rnn.init(jax.random.key(0), x)
  h0 = jnp.ones((B, H))
  c_ref, y_ref = recurrence.unroll(cell, v["params"], x, initial_carry=h0)
  c_tm, y_tm = rnn.apply(v, jnp.swapaxes(x, 0, 1), time_major=True, initial_carry=h0)
  np.testing.assert_allclose(jnp.swapaxes(y_tm, 0, 1), y_ref, atol=1e-6)
  c_2, y_2 = rnn.apply(v, x.reshape(1, B, T, D), initial_carry=h0.reshape(1, B, H))
  np.testing.assert_allclose(y_2[0], y_ref, atol=1e-6)
  np.testing.assert_allclose(c_tm, c_ref, atol=1e-6)


def test_bidirectional_and_the_step_module():
  x, _ = _data(3)
  cell = cells.LSTM(hidden=H)
  bi = fnn.Bidirectional(linen.RNN(cell), linen.RNN(cell))
  v = bi.init(jax.random.key(0), x)
  y = bi.apply(v, x, seq_lengths=LENGTHS)
  p = v["params"]
  _, y_ref = stacks.bidirectional(
      cell, cell, {"fwd": p["forward_rnn"], "bwd": p["backward_rnn"]}, x,
      mask_BxT=linen.lengths_to_mask(LENGTHS, T))
  np.testing.assert_allclose(y, y_ref, atol=1e-6)
  # The step module inside Flax's own nn.RNN gives the fused unroll's outputs.
  flax_loop = fnn.RNN(linen.Cell(cell))
  y_loop = flax_loop.apply({"params": {"cell": p["forward_rnn"]}}, x)
  _, y_fused = recurrence.unroll(cell, p["forward_rnn"], x)
  np.testing.assert_allclose(y_loop, y_fused, atol=1e-6)


def test_a_flax_cell_is_refused_in_one_line_pointing_to_the_converter():
  from flax import nnx as flax_nnx
  from lib.nn import nnx
  with pytest.raises(TypeError, match=r"^lib.nn.linen.RNN takes a cell of lib.nn.cells .* not "
                     r"flax.linen.recurrent.LSTMCell; .* lib.nn.flax_convert\."):
    linen.RNN(fnn.LSTMCell(8)).init(jax.random.key(0), jnp.ones((2, 3, 4)))
  with pytest.raises(TypeError, match=r"^lib.nn.nnx.RNN takes a cell of lib.nn.cells"):
    nnx.RNN(flax_nnx.LSTMCell(4, 8, rngs=flax_nnx.Rngs(0)), 4, rngs=flax_nnx.Rngs(0))
