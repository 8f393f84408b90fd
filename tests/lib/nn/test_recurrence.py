"""Masking, direction, bidirectional and gradients of the unroll."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lib.nn import cells, gradcheck, recurrence

B, T, D, H = 4, 7, 3, 5
LENGTHS = np.array([7, 3, 1, 5])


def setup(name="lstm", seed=0):
  cell = cells.make(name, H)
  p = cell.init(jax.random.key(seed), D)
  x = jnp.asarray(np.random.default_rng(seed).standard_normal((B, T, D)), jnp.float32)
  mask = jnp.asarray(np.arange(T)[None] < LENGTHS[:, None], jnp.float32)
  return cell, p, x, mask


@pytest.mark.parametrize("name", ["simple", "lstm", "gru"])
@pytest.mark.parametrize("reverse", [False, True])
def test_padding_changes_nothing(name, reverse):
  cell, p, x, mask = setup(name)
  garbage = jnp.where(mask[..., None] > 0, x, 1e3)  # padding filled with huge values
  carry, y = recurrence.unroll(cell, p, garbage, mask_BxT=mask, reverse=reverse)
  for b, n in enumerate(LENGTHS):
    c_b, y_b = recurrence.unroll(cell, p, x[b:b + 1, :n], reverse=reverse)
    np.testing.assert_allclose(cell.output(carry)[b], cell.output(c_b)[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y[b, :n], y_b[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(y[b, n:], 0.0)


@pytest.mark.parametrize("name", ["simple", "lstm", "gru"])  # additive cells and GRU: two backward paths
@pytest.mark.parametrize("fast_grad", [True, False])
def test_no_gradient_flows_from_padding(name, fast_grad):
  cell, p, x, mask = setup(name)

  def loss(p, x):
    c, y = recurrence.unroll(cell, p, x, mask_BxT=mask, fast_grad=fast_grad)
    return jnp.sum(y ** 2) + jnp.sum(cell.output(c))

  g_x = jax.grad(loss, argnums=1)(p, x)
  pad = np.asarray(mask) == 0
  np.testing.assert_array_equal(np.asarray(g_x)[pad], 0.0)
  assert np.all(np.abs(np.asarray(g_x)[~pad]).sum(-1) > 0)


def test_reverse_is_forward_on_flipped_input():
  cell, p, x, _ = setup("simple")
  c_r, y_r = recurrence.unroll(cell, p, x, reverse=True)
  c_f, y_f = recurrence.unroll(cell, p, x[:, ::-1])
  np.testing.assert_allclose(c_r, c_f, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(y_r, y_f[:, ::-1], rtol=1e-5, atol=1e-6)


def test_bidirectional_concatenates_both_directions():
  fwd, bwd = cells.LSTM(H), cells.GRU(H + 1)
  params = recurrence.init_bidirectional(fwd, bwd, jax.random.key(1), D)
  _, _, x, mask = setup()
  (cf, cb), y = recurrence.bidirectional(fwd, bwd, params, x, mask_BxT=mask)
  assert y.shape == (B, T, 2 * H + 1)
  _, yf = recurrence.unroll(fwd, params["fwd"], x, mask_BxT=mask)
  cb_ref, yb = recurrence.unroll(bwd, params["bwd"], x, mask_BxT=mask, reverse=True)
  np.testing.assert_allclose(y[..., :H], yf, atol=1e-6)
  np.testing.assert_allclose(y[..., H:], yb, atol=1e-6)
  np.testing.assert_allclose(cb, cb_ref, atol=1e-6)
  # the backward direction's final state has read each sequence's first step last
  np.testing.assert_allclose(yb[:, 0], cb, atol=1e-6)


@pytest.mark.parametrize("unroll", [1, 3, True])
def test_unroll_argument_gives_same_result(unroll):
  cell, p, x, mask = setup("lstm")
  ref = recurrence.unroll(cell, p, x, mask_BxT=mask)[1]
  np.testing.assert_allclose(recurrence.unroll(cell, p, x, mask_BxT=mask, unroll=unroll)[1],
                             ref, atol=1e-6)


def test_last_real_output():
  cell, p, x, mask = setup("simple")
  carry, y = recurrence.unroll(cell, p, x, mask_BxT=mask)
  np.testing.assert_allclose(recurrence.last_real_output(y, mask), carry, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["simple", "lstm", "gru"])
@pytest.mark.parametrize("fast_grad", [True, False])
@pytest.mark.parametrize("reverse", [False, True])
def test_grad_matches_central_differences(name, fast_grad, reverse):
  with jax.enable_x64(True):
    cell, p, x, mask = setup(name, seed=3)
    p = jax.tree.map(lambda a: a.astype(jnp.float64), p)
    x, mask = x.astype(jnp.float64), mask.astype(jnp.float64)
    target = jnp.asarray(np.random.default_rng(1).standard_normal((B, T, H)))

    def loss(params):
      c, y = recurrence.unroll(cell, params, x, mask_BxT=mask, reverse=reverse,
                               fast_grad=fast_grad)
      return jnp.sum((y - target) ** 2) + jnp.sum(jnp.tanh(cell.output(c)))

    # float64; noise is ~|f| 1e-16 / eps on the smallest elements, a wrong gate is O(1).
    report = gradcheck.check_grads(loss, p, eps=1e-5, threshold=1e-4, max_elements=40)
  assert report.ok, str(report)
