"""The fused softmax cross-entropy rows equal XLA's form inside lm.softmax_nll: values and
gradients, with and without a bias, under vmap of the output weights."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lib.nn import kernels, lm

pytestmark = pytest.mark.skipif(bool(kernels.unsupported()),
                                reason=f"fused kernels unavailable: {kernels.unsupported()}")


def _setup():
  k = jax.random.split(jax.random.key(0), 4)
  h = jax.random.normal(k[0], (30, 12))
  w = jax.random.normal(k[1], (12, 50))
  b = jax.random.normal(k[2], (50,))
  y = jax.random.randint(k[3], (30,), 0, 50)
  return h, w, b, y


def _grads(h, w, b, y):
  weight = jnp.linspace(0.5, 2.0, y.shape[0])
  f = lambda h, w, b: jnp.sum(lm.softmax_nll(h, w, b, y) * weight)  # noqa: E731
  with_bias = jax.value_and_grad(f, argnums=(0, 1, 2))(h, w, b)
  without = jax.value_and_grad(lambda h, w: f(h, w, None), argnums=(0, 1))(h, w)
  return with_bias, without


def _close(a, b, tol=1e-5):
  for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=tol, atol=tol)


def _calls_the_kernel(monkeypatch, fused: bool):
  """Force the choice (the tests run on 8 simulated devices, where auto takes XLA's form)
  and count the kernel's forward calls."""
  calls = []
  forward = lm.kernel_softmax.forward
  monkeypatch.setattr(lm, "_fused_rows", lambda h, w: fused)
  monkeypatch.setattr(lm.kernel_softmax, "forward", lambda *a: calls.append(1) or forward(*a))
  return calls


def test_fused_rows_equal_xla(monkeypatch):
  h, w, b, y = _setup()
  calls = _calls_the_kernel(monkeypatch, True)
  fused = _grads(h, w, b, y)
  assert len(calls) == 2
  _calls_the_kernel(monkeypatch, False)
  _close(fused, _grads(h, w, b, y))


def test_fused_rows_under_vmap(monkeypatch):
  h, w, b, y = _setup()
  w_3 = jnp.stack([w, 0.5 * w, 2.0 * w])
  grad = lambda: jax.vmap(jax.grad(lambda w: jnp.sum(lm.softmax_nll(h, w, b, y))))(w_3)  # noqa: E731
  calls = _calls_the_kernel(monkeypatch, True)
  fused = grad()
  assert calls
  _calls_the_kernel(monkeypatch, False)
  _close(fused, grad())
