"""Masking, direction, bidirectional and gradients of the unroll."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lib.nn import cells, gradcheck, recurrence, stacks

B, T, D, H = 4, 7, 3, 5
LENGTHS = np.array([7, 3, 1, 5])


def setup(name="lstm", seed=0):
  cell = cells.make(name, H)
  p = cell.init(jax.random.key(seed), D)
  x = jnp.asarray(np.random.default_rng(seed).standard_normal((B, T, D)), jnp.float32)
  mask = jnp.asarray(np.arange(T)[None] < LENGTHS[:, None], jnp.float32)
  return cell, p, x, mask


# Dense cells have two backward passes (the scan's own, fast_grad, and autodiff's); the
# masked and reversed unroll of every cell is in test_every_cell.py.
DENSE = [n for n in cells.names() if isinstance(cells.make(n, H), cells.DenseCell)]
# One name per dense class (linear_matrix is Elman with another activation).
DENSE_CLASSES = list({type(cells.make(n, H)): n for n in reversed(DENSE)}.values())[::-1]


@pytest.mark.parametrize("name", DENSE)
def test_no_gradient_flows_from_padding_under_autodiff(name):
  cell, p, x, mask = setup(name)

  def loss(p, x):
    c, y = recurrence.unroll(cell, p, x, mask_BxT=mask, fast_grad=False)
    return jnp.sum(y ** 2) + jnp.sum(cell.output(c))

  g_x = jax.grad(loss, argnums=1)(p, x)
  pad = np.asarray(mask) == 0
  np.testing.assert_array_equal(np.asarray(g_x)[pad], 0.0)
  assert np.all(np.abs(np.asarray(g_x)[~pad]).sum(-1) > 0)


@dataclasses.dataclass(frozen=True)
class _Gated(cells.DenseCell):
  """A new dense cell whose step reads the two products apart (nothing else declared)."""
  gates = 2

  def combine(self, extra, carry, xp_t, hw_t):
    a, b = jnp.split(xp_t, 2, -1)
    u, v = jnp.split(hw_t, 2, -1)
    h = jnp.tanh(a + jax.nn.sigmoid(b) * u) * jnp.tanh(v)
    return h, h


@dataclasses.dataclass(frozen=True)
class _Swish(cells.AdditiveCell):
  """A new additive cell: its step sees only the sum of the two products."""

  def activate(self, extra, carry, z_t):
    h = z_t * jax.nn.sigmoid(z_t)
    return h, h


@pytest.mark.parametrize("cell", [_Gated(H), _Swish(H)], ids=["combine", "activate"])
def test_a_new_dense_cell_gets_the_right_fast_gradient(cell):
  """The fast backward pass differentiates the very function the forward pass calls,
  so a cell cannot train with wrong gradients by leaving a flag unset."""
  _, _, x, mask = setup()
  p = cell.init(jax.random.key(2), D)

  def loss(p, fast):
    c, y = recurrence.unroll(cell, p, x, mask_BxT=mask, fast_grad=fast)
    return jnp.sum(y ** 2) + jnp.sum(c)

  fast, plain = jax.grad(loss)(p, True), jax.grad(loss)(p, False)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), fast, plain)


def test_reverse_is_forward_on_flipped_input():
  cell, p, x, _ = setup("simple")
  c_r, y_r = recurrence.unroll(cell, p, x, reverse=True)
  c_f, y_f = recurrence.unroll(cell, p, x[:, ::-1])
  np.testing.assert_allclose(c_r, c_f, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(y_r, y_f[:, ::-1], rtol=1e-5, atol=1e-6)


def test_bidirectional_concatenates_both_directions():
  fwd, bwd = cells.LSTM(H), cells.GRU(H + 1)
  params = stacks.init_bidirectional(fwd, bwd, jax.random.key(1), D)
  _, _, x, mask = setup()
  (cf, cb), y = stacks.bidirectional(fwd, bwd, params, x, mask_BxT=mask)
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
@pytest.mark.parametrize("name", DENSE_CLASSES)
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


def test_unroll_takes_any_leading_batch_axes_and_sequence_lengths():
  """``(batch..., T, D)`` with none, one or two batch axes; ``seq_lengths`` as a mask."""
  cell = cells.make("lstm", 5)
  p = cell.init(jax.random.key(0), 3)
  x = jax.random.normal(jax.random.key(1), (2, 4, 7, 3))
  lengths = jnp.array([[7, 3, 5, 1], [2, 2, 7, 6]])

  @jax.jit
  def run(x, lengths):
    mask = (jnp.arange(7) < lengths[..., None]).astype(jnp.float32)
    flat = recurrence.unroll(cell, p, x.reshape(8, 7, 3), mask_BxT=mask.reshape(8, 7))
    return (recurrence.unroll(cell, p, x, seq_lengths=lengths), flat,
            recurrence.unroll(cell, p, x[1, 2]))
  (carry, y), (flat_carry, flat_y), (one_carry, one_y) = run(x, lengths)
  assert y.shape == (2, 4, 7, 5) and carry[0].shape == (2, 4, 5)
  np.testing.assert_allclose(y.reshape(8, 7, 5), flat_y, atol=1e-6)
  np.testing.assert_allclose(carry[1].reshape(8, 5), flat_carry[1], atol=1e-6)
  assert one_y.shape == (7, 5) and one_carry[0].shape == (5,)
  np.testing.assert_allclose(one_y, flat_y[6], atol=1e-6)  # x[1, 2]: its length is 7


@pytest.mark.parametrize("kwargs, x_shape, message", [
    ({}, (3,), r"^unroll: x has shape \(3,\); expected \(batch\.\.\., T, D\)"),
    ({"mask_BxT": jnp.array([3, 1])}, (2, 4, 3),
     r"^unroll: mask_BxT has shape \(2,\); expected \(2, 4\), .*\(lengths go in seq_lengths=\)"),
    ({"seq_lengths": jnp.ones((2, 4))}, (2, 4, 3),
     r"^unroll: seq_lengths has shape \(2, 4\); expected the batch shape \(2,\)"),
    ({"seq_lengths": jnp.array([3, 1]), "mask_BxT": jnp.ones((2, 4))}, (2, 4, 3),
     r"^unroll: give mask_BxT or seq_lengths, not both\."),
])
def test_unroll_names_what_it_expected_in_one_line(kwargs, x_shape, message):
  cell = cells.make("gru", 4)
  p = jax.eval_shape(lambda: cell.init(jax.random.key(0), 3))
  with pytest.raises(ValueError, match=message):
    jax.eval_shape(lambda p: recurrence.unroll(cell, p, jnp.zeros(x_shape), **kwargs), p)


def test_a_flipout_view_is_refused_naming_the_parameter():
  from lib.nn import variational as vi
  cell = cells.make("lstm", 4)
  post = vi.init_posterior(cell.init(jax.random.key(0), 3))
  w, axes = vi.draw(post, jax.random.key(1), 2, "flipout")
  with pytest.raises(TypeError, match=r"^unroll: parameter \['w_rec'\] is a flipout view"):
    jax.eval_shape(lambda w: vi.per_example(lambda w_b, x_b: recurrence.unroll(cell, w_b, x_b)[1],
                                            w, axes, jnp.ones((2, 5, 3))), w)


@pytest.mark.parametrize("name", DENSE_CLASSES)
@pytest.mark.parametrize("reverse", [False, True])
def test_the_input_product_taken_in_the_step_equals_the_hoisted_one(name, reverse):
  cell, p, x, mask = setup(name, seed=4)
  c0 = jax.tree.map(lambda z: z + 0.3, cell.zero_carry((B,)))

  def run(where):
    def loss(p, x, c0):
      c, y = recurrence.unroll(cell, p, x, mask_BxT=mask, reverse=reverse, initial_carry=c0,
                               input_product=where)
      return jnp.sum(jnp.tanh(y)) + jnp.sum(cell.output(c)), (c, y)
    return jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)(p, x, c0)

  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               run("in_step"), run("hoisted"))


def test_auto_takes_the_input_product_in_the_step_where_the_input_is_narrow():
  lstm = cells.make("lstm", 16)  # a projection 64 wide
  on_cpu = jax.default_backend() == "cpu"
  assert recurrence.in_step(lstm, 8) == on_cpu and not recurrence.in_step(lstm, 9)
  assert not recurrence.in_step(lstm, 2, projected=True)  # embedding rows: already projected
  assert not recurrence.in_step(cells.make("lru", 16), 2)  # a linear cell's scan
  assert recurrence.in_step(lstm, 64, "in_step") and not recurrence.in_step(lstm, 2, "hoisted")
  with pytest.raises(ValueError, match=r"input_product='inside'; expected one of \['auto'"):
    recurrence.unroll(lstm, lstm.init(jax.random.key(0), 2), jnp.zeros((1, 3, 2)),
                      input_product="inside")
