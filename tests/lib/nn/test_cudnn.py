"""lib.nn.cudnn: the packing round-trips and cuDNN's reference equals rnnlab's unroll."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lib.errors import ConfigError
from lib.nn import cells, cudnn, recurrence, stacks

B, T, D, H = 3, 6, 4, 5


def _close(a, b):
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_pack_round_trips(bidirectional):
  cell = cells.make("lstm", H)
  p = (stacks.init_bidirectional(cell, cell, jax.random.key(0), D) if bidirectional
       else cell.init(jax.random.key(0), D))
  w = cudnn.pack(p, bidirectional)
  n = 2 if bidirectional else 1
  assert w.shape == (jax.experimental.rnn.get_num_params_in_lstm(D, H, 1, bidirectional),)
  assert w.size == n * (4 * H * (D + H) + 8 * H)
  jax.tree.map(_close, cudnn.unpack(w, D, H, bidirectional), p)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_reference_equals_unroll(bidirectional):
  cell = cells.make("lstm", H)
  kp, kx, kc = jax.random.split(jax.random.key(1), 3)
  p = (stacks.init_bidirectional(cell, cell, kp, D) if bidirectional else cell.init(kp, D))
  x = jax.random.normal(kx, (B, T, D))
  lengths = jnp.array([T, 3, 1], jnp.int32)
  c0 = jax.tree.map(lambda z: 0.3 * jax.random.normal(kc, z.shape), cell.zero_carry((B,)))
  c0 = (c0, c0) if bidirectional else c0

  def ours(p, x, c0):
    if bidirectional:
      kw = dict(seq_lengths=lengths)
      cf, yf = recurrence.unroll(cell, p["fwd"], x, initial_carry=c0[0], **kw)
      cb, yb = recurrence.unroll(cell, p["bwd"], x, initial_carry=c0[1], reverse=True, **kw)
      return (cf, cb), jnp.concatenate([yf, yb], -1)
    return recurrence.unroll(cell, p, x, seq_lengths=lengths, initial_carry=c0)

  def ref(p, x, c0):
    return cudnn.lstm_layer(cell, p, x, seq_lengths=lengths, initial_carry=c0,
                            bidirectional=bidirectional, reference=True)

  def loss(f, p, x, c0):
    c, y = f(p, x, c0)
    return jnp.sum(jnp.sin(y)) + sum(jnp.sum(a ** 2) for a in jax.tree.leaves(c)), (c, y)

  (_, out_o), g_o = jax.value_and_grad(lambda *a: loss(ours, *a), (0, 1, 2), has_aux=True)(p, x, c0)
  (_, out_r), g_r = jax.value_and_grad(lambda *a: loss(ref, *a), (0, 1, 2), has_aux=True)(p, x, c0)
  jax.tree.map(_close, out_o, out_r)
  jax.tree.map(_close, g_o, g_r)


def test_cudnn_order_refusals():
  layers = [cells.make("lstm", H)] * 2
  params = stacks.init_stack(layers, jax.random.key(0), D)
  x = jnp.zeros((B, T, D))
  if jax.default_backend() != "gpu":
    with pytest.raises(ConfigError, match="order='cudnn' needs a GPU"):
      stacks.stack(layers, params, x, order="cudnn")
  assert "plain LSTM" in cudnn.unsupported_layers([cells.make("gru", H)], params)
  assert "float32" in cudnn.unsupported_layers([cells.make("lstm", H, dtype="bfloat16")], params)
  per_example = jax.tree.map(lambda a: jnp.stack([a, a]), params)
  assert "one set of weights" in cudnn.unsupported_layers(layers, per_example)
  assert cudnn.unsupported_layers(layers, params) == ""
