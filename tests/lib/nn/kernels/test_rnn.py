"""The fused LSTM and GRU kernels equal the lax.scan unroll: outputs, final carries and
gradients of every input, with ragged masks, both directions, under vmap."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lib.errors import ConfigError
from lib.nn import cells, kernels, recurrence, scans
from tests.lib.nn.test_scans import setup, values_and_grads

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))))
D, H = 3, 80
LENGTHS = np.array([9, 4, 7, 1, 9, 2, 9, 8, 3, 9, 5])
B, T = len(LENGTHS), 9

pytestmark = pytest.mark.skipif(bool(kernels.unsupported()),
                                reason=f"fused kernels unavailable: {kernels.unsupported()}")


def _setup(name):
  """Big enough for the kernels to split each step over two threads (2^17 multiply-adds),
  with 11 rows (a partial 8-row block) and 80 units (a partial 32-column panel a thread)."""
  return setup(name, D=D, H=H, lengths=LENGTHS)


def _assert_close(a, b, tol=2e-5):
  for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=tol, atol=tol)


@pytest.mark.parametrize("name", ["lstm", "gru"])
@pytest.mark.parametrize("masked", [False, True])
def test_fused_equals_the_scan(name, masked):
  cell, p, x, mask, carry0 = _setup(name)
  mask = mask if masked else None
  ref = values_and_grads(cell, p, x, mask, carry0, kernel="scan")
  got = values_and_grads(cell, p, x, mask, carry0, kernel="fused")
  _assert_close(got, ref)
  if masked:  # outputs past each sequence's end are exactly zero
    y = got[0][0][1]
    assert float(jnp.abs(y * (1 - mask[..., None])).max()) == 0.0


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_fused_under_vmap_of_per_trial_weights(name):
  """Two nested vmaps (trials x seeds): the kernel loops over the problems it is given."""
  cell, p, x, mask, carry0 = _setup(name)
  p_2x3 = jax.tree.map(lambda v: v * jnp.linspace(0.5, 1.5, 6).reshape(2, 3, *([1] * v.ndim)), p)

  def grads(kernel):
    def loss(q):
      return jnp.sum(recurrence.unroll(cell, q, x, mask_BxT=mask, initial_carry=carry0,
                                       kernel=kernel)[1] ** 2)
    return jax.jit(jax.vmap(jax.vmap(jax.value_and_grad(loss))))(p_2x3)

  _assert_close(grads("fused"), grads("scan"), tol=5e-5)


def test_fused_without_a_recurrent_bias():
  cell = cells.make("gru", H, use_bias=False)
  p = cell.init(jax.random.key(3), D)
  x = jax.random.normal(jax.random.key(4), (B, T, D))

  def grads(kernel):
    return jax.value_and_grad(lambda q: jnp.sum(recurrence.unroll(cell, q, x, kernel=kernel)[1]))(p)

  _assert_close(grads("fused"), grads("scan"))


def test_auto_picks_fused_where_it_can_run():
  lstm = cells.make("lstm", H)
  w, xp = jnp.zeros((H, 4 * H)), jnp.zeros((T, B, 4 * H))
  carry = lstm.zero_carry((B,))
  auto = scans.resolve_kernel("auto", lstm, w, xp, carry)
  assert auto is (scans.DenseKernel.FUSED if jax.device_count() == 1 else scans.DenseKernel.SCAN)
  assert scans.resolve_kernel("auto", lstm, w, xp, carry, fast_grad=False) is scans.DenseKernel.SCAN
  bf16 = scans.resolve_kernel("auto", lstm, w.astype(jnp.bfloat16), xp, carry)
  assert bf16 is scans.DenseKernel.SCAN
  elman = cells.make("elman", H)
  assert scans.resolve_kernel("auto", elman, w[:, :H], xp[..., :H],
                              elman.zero_carry((B,))) is scans.DenseKernel.SCAN


def test_forward_mode_autodiff_takes_the_scan():
  """fast_grad=False (jvp, Hessian-vector products) runs lax.scan under AUTO."""
  cell, p, x, _, _ = _setup("lstm")
  f = lambda q: recurrence.unroll(cell, q, x, fast_grad=False)[1]  # noqa: E731
  _, tangent = jax.jvp(f, (p,), (jax.tree.map(jnp.ones_like, p),))
  assert np.isfinite(np.asarray(tangent)).all()


def test_bad_kernel_choices_are_one_line_errors():
  cell, p, x, _, _ = _setup("lstm")
  with pytest.raises(ConfigError, match=r"Unknown dense kernel 'fast'.*\['auto', 'scan', 'fused'\]"):
    recurrence.unroll(cell, p, x, kernel="fast")
  with pytest.raises(ConfigError, match="kernel='fused' needs float32"):
    recurrence.unroll(cell, p, x, kernel="fused", dtype=jnp.bfloat16)
  with pytest.raises(ConfigError, match="kernel='fused' needs an LSTM or GRU cell"):
    recurrence.unroll(cells.make("elman", H), cells.make("elman", H).init(jax.random.key(0), D), x,
                      kernel="fused")
  with pytest.raises(ConfigError, match="kernel='fused' takes the input product hoisted"):
    recurrence.unroll(cell, p, x, kernel="fused", input_product="in_step")


def test_an_explicit_in_step_product_keeps_auto_on_the_scan():
  cell, p, x, _, _ = _setup("gru")
  loss = lambda q, **kw: jnp.sum(recurrence.unroll(cell, q, x, **kw)[1] ** 2)  # noqa: E731
  in_step = jax.value_and_grad(lambda q: loss(q, input_product="in_step"))(p)
  fused = jax.value_and_grad(lambda q: loss(q, kernel="fused"))(p)
  _assert_close(in_step, fused)


@pytest.mark.slow
def test_auto_runs_the_kernels_on_one_device():
  """The suite runs on 8 simulated devices, where auto takes the scan; in a plain
  one-device process auto takes the fused LSTM, attention and softmax kernels."""
  code = """
import jax, jax.numpy as jnp
from lib.nn import attention, cells, lm, recurrence, scans
cell = cells.make('lstm', 8)
x = jnp.ones((2, 3, 4))
print(jax.device_count(), scans.resolve_kernel('auto', cell, jnp.zeros((8, 32)), jnp.zeros((3, 2, 32)),
      cell.zero_carry((2,))).value, attention._fused_additive('auto', x), lm._fused_rows(x, x))
"""
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       cwd=ROOT, env=dict(env, JAX_PLATFORMS="cpu")).stdout
  assert out.split() == ["1", "fused", "True", "True"], out
