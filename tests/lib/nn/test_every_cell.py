"""Generated from the registry: every cell through every place a cell goes.

Registering a cell (``lib.nn.cells.register``) is all it takes to be covered here:
the unroll with masks, reverse and bidirectional; a 2-layer stack; the Linen and NNX
wrappers; the language model and the seq2seq model; the variational RNN's encoder
with per-example weights; a vmapped sweep of two trials. Sizes are tiny: these
check wiring and shapes; the numbers are checked in test_cells.py and test_scans.py.
Each test runs its model code inside one ``jax.jit`` and checks with numpy: an
operation run eagerly compiles a program of its own, which here costs more than the test.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx as fnnx

from experiments.counting import config as counting_config, experiment as counting
from experiments.varrnn.model import PairRNN
from lib.nn import cells, linen, lm, nnx, recurrence, seq2seq, stacks, variational as vi
from lib.sweeps import space, trial_batch

B, T, D, H = 3, 6, 3, 4
LENGTHS = np.array([6, 2, 4])
NAMES = cells.names()


def _inputs(seed=0):
  x = np.random.default_rng(seed).standard_normal((B, T, D)).astype(np.float32)
  return x, (np.arange(T)[None] < LENGTHS[:, None]).astype(np.float32)


def _close(a, b):
  np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _finite(tree):
  return all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(tree))


def _unrolls(cell, layers, key, x, garbage, mask, n):
  """Masked, garbage-padded, alone, both directions, bidirectional, a 2-layer stack."""
  params = stacks.init_stack(layers, key, D)
  p, out = params[0], {}
  for rev in (False, True):
    out[f"{rev}clean"] = recurrence.unroll(cell, p, x, mask_BxT=mask, reverse=rev)
    out[f"{rev}garbage"] = recurrence.unroll(cell, p, garbage, mask_BxT=mask, reverse=rev)
    out[f"{rev}alone"] = recurrence.unroll(cell, p, x[2:, :n], reverse=rev)
  out["bi"] = stacks.bidirectional(cell, cell, {"fwd": p, "bwd": p}, x, mask_BxT=mask)
  out["stack"] = stacks.stack(layers, params, x, mask_BxT=mask)
  out["top"] = recurrence.unroll(layers[1], params[1], out["Falseclean"][1], mask_BxT=mask)
  out["grad_x"] = jax.grad(lambda x: sum(jnp.sum(recurrence.unroll(
      cell, p, x, mask_BxT=mask, reverse=r)[1] ** 2) for r in (False, True)))(x)
  return p, out


def _check_unrolls(out, mask, n):
  for rev in (False, True):
    (c, y), (ca, ya) = out[f"{rev}clean"], out[f"{rev}alone"]
    jax.tree.map(_close, (c, y), out[f"{rev}garbage"])     # padding changes nothing
    np.testing.assert_array_equal(np.asarray(y)[mask == 0], 0.0)
    _close(y[2, :n], ya[0])                                 # a padded row is the row alone
    jax.tree.map(lambda u, v: _close(u[2], v[0]), c, ca)
  (_, cb), y_bi = out["bi"]
  _close(y_bi, np.concatenate([out["Falseclean"][1], out["Trueclean"][1]], -1))
  jax.tree.map(_close, cb, out["Trueclean"][0])
  g = np.asarray(out["grad_x"])
  np.testing.assert_array_equal(g[mask == 0], 0.0)      # no gradient from padding
  assert np.all(np.abs(g[mask > 0]).sum(-1) > 0)
  carries, y = out["stack"]                               # a 2-layer stack
  _close(y, out["top"][1])
  assert y.shape == (B, T, H + 1) and len(carries) == 2


def _flax(cell, p, x, key):
  """The Linen RNN and one-step Cell, and the NNX RNN, over the cell's own parameters."""
  rnn, step = linen.RNN(cell), linen.Cell(cell)
  y_linen = rnn.apply({"params": p}, x, seq_lengths=LENGTHS)
  y_step = step.apply({"params": p}, step.initialize_carry(key, (B, D)), x[:, 0])[1]
  module = nnx.RNN(cell, D, rngs=fnnx.Rngs(0))
  module.load_cell_params(p)
  return y_linen, y_step, module(x, seq_lengths=LENGTHS)


def _models(name, key):
  """A 2-layer LM (loss, gradient, one generation step); a seq2seq model with a
  bidirectional encoder (teacher forcing, greedy decoding); the variational RNN's
  encoder with one weight sample per example (its gradient)."""
  model = lm.RecurrentLM(11, H, cell=name, layers=2)
  s2s = seq2seq.Seq2Seq(src_vocab=9, tgt_vocab=9, embed_dim=0, hidden=H, cell=name,
                        bidirectional=True)
  pair = PairRNN(input_dim=D, hidden=H, cell=name, init="default")
  x = np.asarray([[1, 2, 3, 4], [5, 6, 7, 8]])
  batch = {"x": x, "y": (x + 1) % 11}
  p = model.init(key)
  lm_value, lm_grads = jax.value_and_grad(
      lambda p: lm.window_loss(model, p, batch, None, None, True)[0])(p)
  logits, _ = model.step(p, model.zero_carry(2), x[:, 0])
  q, src, src_len = s2s.init(key), np.asarray([[1, 2, 3, 0], [4, 5, 6, 7]]), np.asarray([3, 4])
  s2s_out = s2s.apply(q, {"src": src, "src_len": src_len, "tgt_in": x[:, :2]})
  toks, _ = s2s.greedy(q, src, src_len, max_len=3, start_id=1, end_id=2)

  rng = np.random.default_rng(0)
  mask = _inputs()[1]
  inputs = {"ids1": rng.integers(0, 7, (B, T)), "ids2": rng.integers(0, 7, (B, T)),
            "mask1": mask, "mask2": mask[::-1].copy()}
  table = jnp.asarray(rng.standard_normal((7, D)), jnp.float32)

  def vi_loss(post):
    w, axes = vi.draw(post, jax.random.fold_in(key, 1), B, "example")
    logits = vi.per_example(lambda q, i: pair.logits(q, i, table), w, axes, inputs)
    return jnp.sum(jax.nn.log_softmax(logits)[:, 0])

  vi_value, vi_grads = jax.value_and_grad(vi_loss)(
      vi.init_posterior(pair.init_params(key), np.log(0.05)))
  return (lm_value, lm_grads, logits), (s2s_out, toks), (vi_value, vi_grads)


@pytest.mark.parametrize("name", NAMES)
def test_every_place_a_cell_goes(name):
  """Unroll (masks, reverse, bidirectional), a 2-layer stack, the Linen and NNX
  wrappers, the LM, seq2seq and the variational encoder: one program per cell."""
  cell = cells.make(name, H)
  layers = [cell, cells.make(name, H + 1)]
  x, mask = _inputs()
  garbage = np.where(mask[..., None] > 0, x, 1e3)  # padding filled with huge values
  n = int(LENGTHS[2])

  @jax.jit
  def run(key):
    p, out = _unrolls(cell, layers, key, x, garbage, mask, n)
    return p, out, _flax(cell, p, x, key), _models(name, key)

  p, out, (y_linen, y_step, y_nnx), (lm_out, s2s_out, vi_out) = run(jax.random.key(0))
  _check_unrolls(out, mask, n)
  want = out["Falseclean"][1]
  _close(y_linen, want)
  _close(y_step, want[:, 0])
  _close(y_nnx, want)
  shapes = jax.eval_shape(lambda k: linen.RNN(cell).init(k, x, seq_lengths=LENGTHS),
                          jax.random.key(2))
  assert set(shapes["params"]) == set(p)                    # the cell's own parameter names
  assert _finite((lm_out, s2s_out, vi_out))
  assert lm_out[2].shape == (2, 11) and s2s_out[0].shape == (2, 2, 9)
  assert s2s_out[1].shape == (2, 3)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_two_trials_of_a_vmapped_sweep(name, tmp_path):
  base = space.apply(counting_config.get_config("rmsprop"), {
      "model.cell": name, "model.hidden": H, "model.init": "default", "loss": "mse",
      "trainer.num_epochs": 3, "data.num_samples": 8, "data.batch_size": 8,
      "data.eval_samples": 8, "trainer.tensorboard": False, "trainer.plot": False})
  trials = [{"optimizer.lr": 0.01}, {"optimizer.lr": 0.03}]
  summaries = trial_batch.fit(counting.build, base, trials,
                                [str(tmp_path / "t0"), str(tmp_path / "t1")])
  assert [s["status"] for s in summaries] == ["completed", "completed"]
  losses = [s["final"]["train/mse"] for s in summaries]
  assert all(np.isfinite(losses)) and losses[0] != losses[1]
