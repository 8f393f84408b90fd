"""The linear scans: every algorithm equals the sequential one, values and gradients."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lib.errors import ConfigError
from lib.nn import cells, recurrence, scans

B, T, D, H = 3, 11, 3, 4
LENGTHS = np.array([11, 4, 7])
LINEAR = [n for n in cells.names() if isinstance(cells.make(n, H), cells.LinearCell)]


def _random_like(key, tree):
  leaves, treedef = jax.tree.flatten(tree)
  keys = jax.random.split(key, len(leaves))
  out = []
  for k, z in zip(keys, leaves):
    r = 0.5 * jax.random.normal(k, z.shape + (2,))
    out.append(jax.lax.complex(r[..., 0], r[..., 1]) if jnp.iscomplexobj(z) else r[..., 0])
  return jax.tree.unflatten(treedef, out)


def setup(name, seed=0, *, D=D, H=H, lengths=LENGTHS):
  """A cell, perturbed parameters, inputs, a right-padded mask of ``lengths`` (the batch;
  the longest is T) and a random initial carry."""
  B, T = len(lengths), int(max(lengths))
  cell = cells.make(name, H)
  key = jax.random.key(seed)
  p = jax.tree.map(lambda v: v + 0.1 * jax.random.normal(key, v.shape), cell.init(key, D))
  x = jnp.asarray(np.random.default_rng(seed).standard_normal((B, T, D)), jnp.float32)
  mask = jnp.asarray(np.arange(T)[None] < np.asarray(lengths)[:, None], jnp.float32)
  carry0 = _random_like(jax.random.fold_in(key, 1), cell.zero_carry((B,)))
  return cell, p, x, mask, carry0


def values_and_grads(cell, p, x, mask, carry0, **unroll_kw):
  """Outputs, final carries and gradients of both directions in one program
  (``unroll_kw``: :func:`recurrence.unroll`'s options, e.g. ``fast_grad``, ``kernel``)."""
  r = jax.random.normal(jax.random.key(7), (2, *x.shape[:2], cell.hidden))

  def loss(p, x, c0):
    total, outs = 0.0, []
    for i, reverse in enumerate((False, True)):
      c, y = recurrence.unroll(cell, p, x, mask_BxT=mask, initial_carry=c0, reverse=reverse,
                               **unroll_kw)
      tail = sum(jnp.sum(jnp.abs(leaf) ** 2) for leaf in jax.tree.leaves(c))
      total = total + jnp.sum(y * r[i]) + 0.1 * tail
      outs.append((c, y))
    return total, outs

  (_, out), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))(
      p, x, carry0)
  return out, grads


@pytest.mark.parametrize("name", LINEAR)
def test_every_scan_equals_the_sequential_one(name):
  """Masks, an initial state, both directions; each algorithm with its own backward
  pass (fast_grad) against autodiff of the sequential scan."""
  cell, p, x, mask, carry0 = setup(name)
  ref = values_and_grads(cells.make(name, H, scan="sequential"), p, x, mask, carry0,
                          fast_grad=False)
  for scan in ("sequential", "associative", "chunked"):
    fast = cells.make(name, H, scan=scan, chunk=4)  # 11 steps: 3 chunks, one padded
    got = values_and_grads(fast, p, x, mask, carry0, fast_grad=True)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5,
                                                         err_msg=f"{name} {scan}"), got, ref)


def test_linear_scan_alone_with_broadcast_coefficients():
  """``a`` broadcast over the state (mLSTM's per-head forget gate), complex values."""
  k = jax.random.split(jax.random.key(3), 4)
  a = jax.nn.sigmoid(jax.random.normal(k[0], (T, B, 2, 1, 1))).astype(jnp.complex64)
  b = jax.lax.complex(jax.random.normal(k[1], (T, B, 2, 3, 5)), jax.random.normal(k[2], (T, B, 2, 3, 5)))
  h0 = jax.random.normal(k[3], (B, 2, 3, 5)).astype(jnp.complex64)

  def loss(scan, fast):
    def f(a, b, h0):
      h = scans.linear_scan(a, b, h0, scan=scan, chunk=4, fast_grad=fast)
      return jnp.sum(jnp.abs(h) ** 2)
    return jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2)))(a, b, h0)

  ref = loss("sequential", False)
  for scan in ("sequential", "associative", "chunked"):
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=2e-4, atol=1e-4),
                 loss(scan, True), ref)


def test_auto_follows_the_measured_table():
  for platform, rules in scans.AUTO_RULES.items():
    for longest, kind in rules:
      steps = 10 ** 6 if longest == float("inf") else int(longest)
      assert scans.resolve("auto", steps, platform) is kind
  assert scans.resolve("chunked", 10) is scans.ScanType.CHUNKED
  with pytest.raises(ConfigError, match="Unknown scan"):
    scans.resolve("fast", 10)


def test_max_plus_scan_is_the_running_stabilizer():
  rng = np.random.default_rng(0)
  lf, li, m0 = -np.abs(rng.standard_normal((T, 2))), rng.standard_normal((T, 2)), rng.standard_normal(2)
  m, ref = m0, []
  for t in range(T):
    m = np.maximum(m + lf[t], li[t])
    ref.append(m)
  np.testing.assert_allclose(scans.max_plus_scan(jnp.asarray(lf), jnp.asarray(li), jnp.asarray(m0)),
                             np.stack(ref), rtol=1e-6)
