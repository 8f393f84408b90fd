"""The fused additive-attention scores equal XLA's form: values and gradients, masked
memory, under vmap of per-trial parameters."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lib.errors import ConfigError
from lib.nn import attention, kernels

B, T, S, Q, A = 4, 6, 5, 8, 7

pytestmark = pytest.mark.skipif(bool(kernels.unsupported()),
                                reason=f"fused kernels unavailable: {kernels.unsupported()}")


def _setup():
  k = jax.random.split(jax.random.key(0), 3)
  p = attention.init("additive", k[0], Q, Q, A)
  q = jax.random.normal(k[1], (B, T, Q))
  memory = jax.random.normal(k[2], (B, S, Q))
  mask = (jnp.arange(S)[None] < jnp.array([5, 3, 1, 4])[:, None]).astype(jnp.float32)
  return p, q, memory, mask


def _loss(kernel):
  def loss(p, q, memory, mask):
    context, weights = attention.attend("additive", p, q, memory, mask, kernel=kernel)
    return jnp.sum(context * jnp.sin(context)) + jnp.sum(weights ** 2)
  return loss


def _close(a, b, tol=1e-5):
  for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=tol, atol=tol)


def test_fused_additive_equals_xla():
  p, q, memory, mask = _setup()
  scores = [attention.scores("additive", p, q, memory, kernel=k) for k in ("xla", "fused")]
  _close(scores[0], scores[1])
  grads = [jax.jit(jax.value_and_grad(_loss(k), argnums=(0, 1, 2)))(p, q, memory, mask)
           for k in ("xla", "fused")]
  _close(grads[0], grads[1])


def test_fused_additive_under_vmap_of_parameters():
  p, q, memory, mask = _setup()
  p_3 = jax.tree.map(lambda v: v * jnp.array([0.5, 1.0, 2.0]).reshape(3, *([1] * v.ndim)), p)
  grads = [jax.jit(jax.vmap(jax.grad(lambda w: _loss(k)(w, q, memory, mask))))(p_3)
           for k in ("xla", "fused")]
  _close(grads[0], grads[1], tol=3e-5)


def test_bad_attention_kernels_are_one_line_errors():
  p, q, memory, _ = _setup()
  with pytest.raises(ConfigError, match=r"Unknown attention kernel 'gpu'"):
    attention.scores("additive", p, q, memory, kernel="gpu")
  with pytest.raises(ConfigError, match="kernel='fused' needs float32 operands"):
    attention.scores("additive", jax.tree.map(lambda v: v.astype(jnp.bfloat16), p),
                     q.astype(jnp.bfloat16), memory.astype(jnp.bfloat16), kernel="fused")
