"""lib.nn.stacks: the wavefront order equals the layer-by-layer one; bidirectional stacks."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lib.errors import ConfigError
from lib.nn import cells, lm, stacks

B, T, D, H = 3, 7, 5, 6


def _close(a, b, tol=2e-5):
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol)


def _inputs(key):
  kx, kc = jax.random.split(key)
  x = jax.random.normal(kx, (B, T, D))
  mask = (jnp.arange(T)[None] < jnp.array([T, 4, 1])[:, None]).astype(jnp.float32)
  return x, mask, kc


def _loss(order, layers, params, x, carries, mask, rng):
  cs, y = stacks.stack(layers, params, x, mask_BxT=mask, initial_carries=carries, dropout=0.25,
                       rng=rng, dropout_ends=True, order=order)
  h = jnp.concatenate([cells.output_of(c) for c in cs], -1)
  return jnp.sum(jnp.sin(y) * jnp.arange(H)) + jnp.sum(h ** 2), (cs, y)


@pytest.mark.parametrize("name", ["lstm", "gru", "mingru"])
@pytest.mark.parametrize("L", [1, 2, 3, 4])
def test_wavefront_equals_layers(name, L):
  x, mask, key = _inputs(jax.random.key(L))
  layers = [cells.make(name, H)] * L
  params = stacks.init_stack(layers, key, D)
  carries = tuple(jax.tree.map(lambda z: z + 0.1 * (l + 1), c.zero_carry((B,)))
                  for l, c in enumerate(layers))
  rng = jax.random.key(7)
  grads, outs = {}, {}
  for order in ("layers", "wavefront"):
    f = jax.value_and_grad(lambda p, x, c: _loss(order, layers, p, x, c, mask, rng),
                           argnums=(0, 1, 2), has_aux=True)
    (_, outs[order]), grads[order] = f(params, x, carries)
  jax.tree.map(_close, outs["layers"], outs["wavefront"])
  jax.tree.map(_close, grads["layers"], grads["wavefront"])
  np.testing.assert_array_equal(np.asarray(outs["wavefront"][1])[np.asarray(mask) == 0], 0.0)


def test_bidirectional_stack_is_two_passes_per_layer():
  x, mask, key = _inputs(jax.random.key(0))
  layers = [cells.make("gru", H), cells.make("lstm", 4)]
  params = stacks.init_stack(layers, key, D, bidirectional=True)
  assert params[1]["fwd"]["w_x"].shape == (2 * H, 4 * 4)
  (c0, c1), y = stacks.stack(layers, params, x, mask_BxT=mask, bidirectional=True)
  (r0, h0) = stacks.bidirectional(layers[0], layers[0], params[0], x, mask_BxT=mask)
  (r1, h1) = stacks.bidirectional(layers[1], layers[1], params[1], h0, mask_BxT=mask)
  jax.tree.map(_close, (c0, c1, y), (r0, r1, h1))
  assert y.shape == (B, T, 8) and isinstance(c1, tuple) and len(c1) == 2
  # Layer 0's input projections given directly, one per direction.
  xp = tuple(layers[0].project(params[0][d], x) for d in ("fwd", "bwd"))
  _, y_p = stacks.stack(layers, params, xp, mask_BxT=mask, bidirectional=True, projected=True)
  _close(y_p, y)


def test_auto_and_refusals():
  layers = [cells.make("lstm", H)] * 2
  assert stacks.resolve("auto", layers, False, 0) is stacks.AUTO_RULES.get(
      jax.default_backend(), stacks.Order.LAYERS)
  assert stacks.resolve("auto", layers, True, 0) is stacks.Order.LAYERS
  with pytest.raises(ConfigError, match="one direction"):
    stacks.resolve("wavefront", layers, True, 0)
  with pytest.raises(ConfigError, match="one cell kind"):
    stacks.resolve("wavefront", [cells.make("lstm", H), cells.make("lstm", 4)], False, 0)
  with pytest.raises(ConfigError, match="expected one of"):
    stacks.parse("diagonal")
  x = jnp.zeros((B, T, D))
  with pytest.raises(ConfigError, match="2 cells but 1 layers"):
    stacks.stack(layers, stacks.init_stack(layers, jax.random.key(0), D)[:1], x)


def test_lm_orders_agree_in_training():
  model = {o: lm.RecurrentLM(17, H, cell="lstm", layers=3, dropout=0.3, order=o)
           for o in ("layers", "wavefront")}
  params = model["layers"].init(jax.random.key(0))
  x = jax.random.randint(jax.random.key(1), (B, T), 0, 17)

  def loss(p, order):
    logits, carry = model[order].apply(p, x, rng=jax.random.key(2), train=True)
    return jnp.mean(jax.nn.log_softmax(logits)[..., 0]) + sum(
        jnp.sum(c[1]) for c in carry)
  for g in zip(*[jax.tree.leaves(jax.grad(loss)(params, o)) for o in model]):
    _close(*g)
  with pytest.raises(ConfigError, match="stack order"):
    lm.RecurrentLM(17, H, order="sideways")
