"""rnnlab's cells as Flax NNX modules: same outputs and gradients as the plain
functions, training under nnx.jit."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx as fnnx

from lib.nn import cells, linen, nnx, recurrence, stacks

B, T, D, H = 3, 6, 4, 5
LENGTHS = jnp.array([6, 2, 4])


class Model(fnnx.Module):
  """LSTM then GRU (rnnlab cells), mean over real steps, an nnx.Linear head."""

  def __init__(self, rngs):
    self.lstm = nnx.RNN(cells.LSTM(hidden=H), D, rngs=rngs)
    self.gru = nnx.RNN(cells.GRU(hidden=H), H, rngs=rngs)
    self.head = fnnx.Linear(H, 2, rngs=rngs)

  def __call__(self, x_BxTxD, lengths_B):
    h = self.gru(self.lstm(x_BxTxD, seq_lengths=lengths_B), seq_lengths=lengths_B)
    return self.head(h.sum(1) / lengths_B[:, None])


def plain(p, x_BxTxD, lengths_B):
  mask = linen.lengths_to_mask(lengths_B, x_BxTxD.shape[1])
  _, h = recurrence.unroll(cells.LSTM(hidden=H), p["lstm"], x_BxTxD, mask_BxT=mask)
  _, h = recurrence.unroll(cells.GRU(hidden=H), p["gru"], h, mask_BxT=mask)
  return (h.sum(1) / lengths_B[:, None]) @ p["kernel"] + p["bias"]


def _plain_params(model):
  return {"lstm": model.lstm.cell_params(), "gru": model.gru.cell_params(),
          "kernel": model.head.kernel[...], "bias": model.head.bias[...]}


def test_nnx_model_matches_plain_functions_and_trains_under_nnx_jit():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((B, T, D)), jnp.float32)
  y = jnp.asarray(rng.standard_normal((B, 2)), jnp.float32)
  model = Model(fnnx.Rngs(0))
  loss_nnx = lambda m: jnp.sum((m(x, LENGTHS) - y) ** 2)
  loss_plain = lambda p: jnp.sum((plain(p, x, LENGTHS) - y) ** 2)
  p0 = _plain_params(model)
  np.testing.assert_allclose(loss_nnx(model), loss_plain(p0), rtol=1e-6)
  g = fnnx.grad(loss_nnx)(model)
  g_plain = jax.grad(loss_plain)(p0)
  for name in ("lstm", "gru"):
    for k, v in g_plain[name].items():
      np.testing.assert_allclose(g[name][k][...], v, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(g["head"]["kernel"][...], g_plain["kernel"], rtol=1e-5, atol=1e-6)

  optimizer = fnnx.Optimizer(model, optax.sgd(0.05), wrt=fnnx.Param)

  @fnnx.jit
  def step(m, opt):
    loss, grads = fnnx.value_and_grad(loss_nnx)(m)
    opt.update(m, grads)
    return loss

  tx, p = optax.sgd(0.05), p0  # the same steps with the plain functions
  s = tx.init(p)
  for _ in range(3):
    loss = step(model, optimizer)
    loss_p, gp = jax.value_and_grad(loss_plain)(p)
    u, s = tx.update(gp, s, p)
    p = optax.apply_updates(p, u)
    np.testing.assert_allclose(loss, loss_p, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               _plain_params(model), p)


def test_nnx_bidirectional_step_module_and_loading_params():
  x = jnp.asarray(np.random.default_rng(1).standard_normal((B, T, D)), jnp.float32)
  cell = cells.LSTM(hidden=H)
  fwd, bwd = nnx.RNN(cell, D, rngs=fnnx.Rngs(0)), nnx.RNN(cell, D, rngs=fnnx.Rngs(1))
  bi = fnnx.Bidirectional(fwd, bwd)
  mask = linen.lengths_to_mask(LENGTHS, T)
  _, y_ref = stacks.bidirectional(
      cell, cell, {"fwd": fwd.cell_params(), "bwd": bwd.cell_params()}, x, mask_BxT=mask)
  np.testing.assert_allclose(bi(x, seq_lengths=LENGTHS), y_ref, atol=1e-6)

  step = nnx.Cell(cell, D, rngs=fnnx.Rngs(2))
  step.load_cell_params(fwd.cell_params())
  carry, ys = step.initialize_carry((B, D)), []
  for t in range(T):
    carry, y_t = step(carry, x[:, t])
    ys.append(y_t)
  _, y_fwd = recurrence.unroll(cell, fwd.cell_params(), x)
  np.testing.assert_allclose(jnp.stack(ys, 1), y_fwd, atol=1e-6)
