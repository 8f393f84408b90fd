"""Generated from the registry: every cell through every place a cell goes.

Registering a cell (``lib.nn.cells.register``) is all it takes to be covered here:
the unroll with masks, reverse and bidirectional; a 2-layer stack; the Linen and NNX
wrappers; the language model and the seq2seq model; the variational RNN's encoder
with per-example weights; a vmapped sweep of two trials. Sizes are tiny: these
check wiring and shapes; the numbers are checked in test_cells.py and test_scans.py.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx as fnnx

from experiments.counting import config as counting_config, experiment as counting
from experiments.varrnn.model import PairRNN
from lib.nn import cells, linen, lm, nnx, recurrence, seq2seq, variational as vi
from lib.sweeps import space, trial_batch

B, T, D, H = 3, 6, 3, 4
LENGTHS = np.array([6, 2, 4])
NAMES = cells.names()


def _init(cell, key, in_dim):
  return jax.jit(lambda k: cell.init(k, in_dim))(key)  # one program, not one per operation


def _inputs(seed=0):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.standard_normal((B, T, D)), jnp.float32)
  mask = jnp.asarray(np.arange(T)[None] < LENGTHS[:, None], jnp.float32)
  return x, mask


def _close(a, b):
  np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_unroll_masks_reverse_bidirectional_and_stack(name):
  cell = cells.make(name, H)
  layers = [cell, cells.make(name, H + 1)]
  params = jax.jit(lambda k: recurrence.init_stack(layers, k, D))(jax.random.key(0))
  p = params[0]
  x, mask = _inputs()
  garbage = jnp.where(mask[..., None] > 0, x, 1e3)  # padding filled with huge values
  n = int(LENGTHS[2])

  @jax.jit
  def run(params, x, garbage):
    p, out = params[0], {}
    for rev in (False, True):
      out[f"{rev}clean"] = recurrence.unroll(cell, p, x, mask_BxT=mask, reverse=rev)
      out[f"{rev}garbage"] = recurrence.unroll(cell, p, garbage, mask_BxT=mask, reverse=rev)
      out[f"{rev}alone"] = recurrence.unroll(cell, p, x[2:, :n], reverse=rev)
    out["bi"] = recurrence.bidirectional(cell, cell, {"fwd": p, "bwd": p}, x, mask_BxT=mask)
    out["stack"] = recurrence.stack(layers, params, x, mask_BxT=mask)
    out["top"] = recurrence.unroll(layers[1], params[1], out["Falseclean"][1], mask_BxT=mask)
    grad_x = jax.grad(lambda x: sum(jnp.sum(recurrence.unroll(cell, p, x, mask_BxT=mask,
                                                                reverse=r)[1] ** 2)
                                    for r in (False, True)))(x)
    return out, grad_x

  out, grad_x = run(params, x, garbage)
  for rev in (False, True):
    (c, y), (ca, ya) = out[f"{rev}clean"], out[f"{rev}alone"]
    jax.tree.map(_close, (c, y), out[f"{rev}garbage"])     # padding changes nothing
    np.testing.assert_array_equal(np.asarray(y)[np.asarray(mask) == 0], 0.0)
    _close(y[2, :n], ya[0])                                 # a padded row is the row alone
    jax.tree.map(lambda u, v: _close(u[2], v[0]), c, ca)
  (_, cb), y_bi = out["bi"]
  _close(y_bi, jnp.concatenate([out["Falseclean"][1], out["Trueclean"][1]], -1))
  jax.tree.map(_close, cb, out["Trueclean"][0])
  g = np.asarray(grad_x)
  np.testing.assert_array_equal(g[np.asarray(mask) == 0], 0.0)   # no gradient from padding
  assert np.all(np.abs(g[np.asarray(mask) > 0]).sum(-1) > 0)
  carries, y = out["stack"]                                 # a 2-layer stack
  _close(y, out["top"][1])
  assert y.shape == (B, T, H + 1) and len(carries) == 2


@pytest.mark.parametrize("name", NAMES)
def test_flax_linen_and_nnx_wrappers(name):
  cell = cells.make(name, H)
  x, mask = _inputs(1)
  p = _init(cell, jax.random.key(1), D)
  lengths = jnp.asarray(LENGTHS)
  want = jax.jit(lambda p: recurrence.unroll(cell, p, x, mask_BxT=mask)[1])(p)
  rnn = linen.RNN(cell)
  shapes = jax.eval_shape(lambda k: rnn.init(k, x, seq_lengths=lengths), jax.random.key(2))
  assert set(shapes["params"]) == set(p)                    # the cell's own parameter names
  _close(jax.jit(lambda q: rnn.apply({"params": q}, x, seq_lengths=lengths))(p), want)
  step = linen.Cell(cell)
  carry = step.initialize_carry(jax.random.key(0), (B, D))
  _close(jax.jit(lambda q: step.apply({"params": q}, carry, x[:, 0])[1])(p), want[:, 0])
  module = nnx.RNN(cell, D, rngs=fnnx.Rngs(0))
  module.load_cell_params(p)
  _close(module(x, seq_lengths=lengths), want)


@pytest.mark.parametrize("name", NAMES)
def test_language_model_and_seq2seq(name):
  """A 2-layer LM (loss, gradient, one generation step) and a seq2seq model with a
  bidirectional encoder (teacher forcing and greedy decoding)."""
  model = lm.RecurrentLM(11, H, cell=name, layers=2)
  s2s = seq2seq.Seq2Seq(src_vocab=9, tgt_vocab=9, embed_dim=0, hidden=H, cell=name,
                        bidirectional=True)
  batch = {"x": jnp.asarray([[1, 2, 3, 4], [5, 6, 7, 8]]), "y": jnp.asarray([[2, 3, 4, 5]] * 2)}
  src, src_len = jnp.asarray([[1, 2, 3, 0], [4, 5, 6, 7]]), jnp.asarray([3, 4])

  @jax.jit
  def run(p, q):
    loss = lambda p: lm.window_loss(model, p, batch, None, None, True)[0]  # noqa: E731
    value, grads = jax.value_and_grad(loss)(p)
    logits, _ = model.step(p, model.zero_carry(2), batch["x"][:, 0])
    out = s2s.apply(q, {"src": src, "src_len": src_len, "tgt_in": jnp.asarray([[1, 2], [3, 4]])})
    toks, _ = s2s.greedy(q, src, src_len, max_len=3, start_id=1, end_id=2)
    return value, grads, logits, out, toks

  value, grads, logits, out, toks = run(jax.jit(model.init)(jax.random.key(0)),
                                        jax.jit(s2s.init)(jax.random.key(2)))
  assert np.isfinite(float(value)) and logits.shape == (2, 11)
  assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grads))
  assert out.shape == (2, 2, 9) and toks.shape == (2, 3) and bool(jnp.isfinite(out).all())


@pytest.mark.parametrize("name", NAMES)
def test_variational_encoder_with_per_example_weights(name):
  model = PairRNN(input_dim=D, hidden=H, cell=name, init="default")
  post = vi.init_posterior(model.init_params(jax.random.key(0)), np.log(0.05))
  rng = np.random.default_rng(0)
  inputs = {"ids1": jnp.asarray(rng.integers(0, 7, (B, T))), "ids2": jnp.asarray(rng.integers(0, 7, (B, T))),
            "mask1": _inputs()[1], "mask2": _inputs()[1][::-1]}
  vectors = jnp.asarray(rng.standard_normal((7, D)), jnp.float32)

  def loss(post):
    w, axes = vi.draw(post, jax.random.key(1), B, "example")  # one weight sample per example
    logits = vi.per_example(lambda q, i: model.logits(q, i, vectors), w, axes, inputs)
    return jnp.sum(jax.nn.log_softmax(logits)[:, 0])

  value, grads = jax.jit(jax.value_and_grad(loss))(post)
  assert np.isfinite(float(value))
  assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grads))


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_two_trials_of_a_vmapped_sweep(name, tmp_path):
  base = space.apply(counting_config.get_config("rmsprop"), {
      "model.cell": name, "model.hidden": H, "model.init": "default", "loss": "mse",
      "trainer.num_epochs": 3, "data.num_samples": 8, "data.batch_size": 8,
      "data.eval_samples": 8, "trainer.tensorboard": False, "trainer.plot": False})
  trials = [{"optimizer.lr": 0.01}, {"optimizer.lr": 0.03}]
  summaries = trial_batch.train(counting.build, base, trials,
                                [str(tmp_path / "t0"), str(tmp_path / "t1")])
  assert [s["status"] for s in summaries] == ["completed", "completed"]
  losses = [s["final"]["train/mse"] for s in summaries]
  assert all(np.isfinite(losses)) and losses[0] != losses[1]
