"""Language models: notes 001's BPTT, truncation, carried state, gradient check."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lib.nn import gradcheck, lm

# Notes 001's Elman LM (experiments/rnnlm/config.py: NOTES_LM).
NOTES_LM = dict(use_bias=False, weight_init="inv_sqrt_fan_in", embedding_is_projection=True)
X = np.array([0, 5, 7, 3, 9, 2, 11])
Y = np.array([5, 7, 3, 9, 2, 11, 1])


@pytest.mark.slow
def test_truncation_stops_gradients_beyond_k_steps():
  model = lm.RecurrentLM(20, 6, **NOTES_LM, truncate=2)
  params = model.init(jax.random.key(0))
  x = jnp.asarray(X)[None]
  t = 6

  def out_t(emb_rows):  # output at step t as a function of each step's input projection
    from lib.nn import recurrence
    _, h = recurrence.unroll_truncated(model.make_cell(), params["layers"][0], emb_rows, 2,
                                       projected=True)
    return h[0, t].sum()

  g = jax.grad(out_t)(params["embed"][x])[0]          # T x H
  norms = np.abs(np.asarray(g)).sum(axis=1)
  assert np.all(norms[:t - 2] == 0.0)                  # inputs t-3 and earlier: cut
  assert np.all(norms[t - 2:t + 1] > 0.0)              # inputs t-2 .. t: flow
  assert np.all(norms[t + 1:] == 0.0)                  # the future never matters
  # Forward values are untouched by truncation. The two programs round differently
  # (on an AMD EPYC host an entry of 4.6e-5 differed by 3e-9), so the tolerance is
  # relative to the outputs' scale, not to each entry, where a near-zero entry fails.
  full = lm.RecurrentLM(20, 6, **NOTES_LM)
  want = np.asarray(full.apply(params, x)[0])
  np.testing.assert_allclose(model.apply(params, x)[0], want, rtol=1e-5,
                             atol=1e-6 * np.abs(want).max())


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["lstm", "elman", "gru"])
def test_carried_state_across_windows_equals_one_long_pass(kind):
  model = lm.RecurrentLM(40, 8, cell=kind, layers=2)
  params = model.init(jax.random.key(1))
  x = jax.random.randint(jax.random.key(2), (3, 12), 0, 40)
  whole, _ = model.apply(params, x)
  first, carry = model.apply(params, x[:, :5])
  second, _ = model.apply(params, x[:, 5:], carry)
  np.testing.assert_allclose(jnp.concatenate([first, second], 1), whole, rtol=1e-5, atol=1e-6)
  # stream_nll over the windows = the NLL of the whole sequence.
  y = (x + 1) % 40
  xs = jnp.stack([x[:, :6], x[:, 6:]]); ys = jnp.stack([y[:, :6], y[:, 6:]])
  tot = lm.stream_nll(model, params, xs, ys)
  assert float(tot.total) == pytest.approx(float(lm.nll(whole, y).total), rel=1e-5)


@pytest.mark.slow
def test_step_matches_apply():
  model = lm.RecurrentLM(30, 8, cell="lstm", layers=2)
  params = model.init(jax.random.key(3))
  x = jax.random.randint(jax.random.key(4), (2, 5), 0, 30)
  logits, _ = model.apply(params, x)
  carry = model.zero_carry(2)
  for t in range(5):
    step_logits, carry = model.step(params, carry, x[:, t])
    np.testing.assert_allclose(step_logits, logits[:, t], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_initial_loss_is_close_to_log_v():
  for model in (lm.RecurrentLM(8000, 100, **NOTES_LM),
                lm.RecurrentLM(10000, 200, cell="lstm", layers=2)):
    params = model.init(jax.random.key(0))
    x = jax.random.randint(jax.random.key(1), (4, 20), 0, model.vocab_size)
    tot = lm.nll(model.apply(params, x)[0], x)
    assert float(tot.total / tot.count) == pytest.approx(np.log(model.vocab_size), abs=0.05)


@pytest.mark.slow
def test_fused_output_loss_matches_autodiff():
  with jax.enable_x64(True):
    model = lm.RecurrentLM(50, 8, cell="lstm", layers=2, tie_weights=True)
    p = jax.tree.map(lambda a: a.astype(jnp.float64), model.init(jax.random.key(0)))
    x = jax.random.randint(jax.random.key(1), (3, 6), 0, 50)
    batch = {"x": x, "y": (x + 1) % 50, "mask": jnp.ones((3, 6)).at[2, 4:].set(0.0)}
    fused = lambda p: lm.window_loss(model, p, batch, None, None, False)[0]  # noqa: E731
    plain = lambda p: lm.nll(model.apply(p, x)[0], batch["y"], batch["mask"]).total / 3  # noqa: E731
    assert float(jax.jit(fused)(p)) == pytest.approx(float(jax.jit(plain)(p)), rel=1e-12)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-12),
                 jax.jit(jax.grad(fused))(p), jax.jit(jax.grad(plain))(p))


def lm_loss(model, params, x, y):
  return lm.window_loss(model, params, {"x": x, "y": y}, None, None, False)[0]


@pytest.mark.slow
@pytest.mark.parametrize("model", [
    lm.RecurrentLM(40, 10, **NOTES_LM),   # full BPTT, as the notes check (bptt_truncate=1000)
    lm.RecurrentLM(40, 10, cell="lstm", layers=2, weight_init="uniform:0.5"),
], ids=["elman_notes", "lstm_2layer"])
def test_gradient_check_passes_on_the_lms(model):
  with jax.enable_x64(True):
    params = jax.tree.map(lambda a: a.astype(jnp.float64), model.init(jax.random.key(0)))
    x = jax.random.randint(jax.random.key(1), (2, 7), 0, 40)
    # float64, h = 1e-4: central differences are good to ~1e-8 relative; gradients
    # below 1e-7 in size are compared absolutely (abs_floor).
    report = gradcheck.check_grads(lambda p: lm_loss(model, p, x, (x + 3) % 40), params,
                                   eps=1e-4, threshold=1e-5, max_elements=40, abs_floor=1e-7)
    assert report.ok, str(report)
    assert len(report.params) == len(jax.tree.leaves(params))


@pytest.mark.slow
def test_gradient_check_fails_on_a_wrong_gradient():
  """The notes' backward pass with one deliberate bug (tanh' taken at s_{t-1})."""
  model = lm.RecurrentLM(40, 10, **NOTES_LM)
  cell = model.make_cell()

  @jax.custom_vjp
  def rnn(w_rec, xp):
    return _fwd(w_rec, xp)[0]

  def _fwd(w_rec, xp):
    def body(s, x_t):
      s = jnp.tanh(x_t + s @ w_rec)
      return s, s
    _, hs = jax.lax.scan(body, jnp.zeros((xp.shape[1],), xp.dtype), xp)
    return hs, (w_rec, hs)

  def _bwd(res, g):
    w_rec, hs = res
    prev = jnp.concatenate([jnp.zeros_like(hs[:1]), hs[:-1]])
    def body(d_next, inp):
      g_t, s_prev = inp
      dz = (g_t + d_next) * (1 - s_prev ** 2)     # BUG: should be (1 - s_t ** 2)
      return dz @ w_rec.T, (dz, s_prev)
    _, (dz, sp) = jax.lax.scan(body, jnp.zeros_like(hs[0]), (g, prev), reverse=True)
    return jnp.einsum("th,tg->hg", sp, dz), dz

  rnn.defvjp(_fwd, _bwd)
  del cell

  with jax.enable_x64(True):
    params = jax.tree.map(lambda a: a.astype(jnp.float64), model.init(jax.random.key(0)))
    x = jnp.asarray(X)

    def loss(p):
      hs = rnn(p["layers"][0]["w_rec"], p["embed"][x])
      return lm.softmax_nll(hs, p["out"]["w"], None, jnp.asarray(Y)).sum()

    report = gradcheck.check_grads(loss, params, eps=1e-4, threshold=1e-5, max_elements=40,
                                   abs_floor=1e-7)
    assert not report.ok
    bad = {p.name for p in report.params if p.max_rel_error > 1e-5}
    assert any("w_rec" in n for n in bad) and any("embed" in n for n in bad), str(report)
