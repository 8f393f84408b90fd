"""Each registered cell against a plain numpy loop of its paper's equations."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lib.nn import cells, initializers, recurrence


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def g(x):  # minGRU / minLSTM's positive candidate
  return np.where(x >= 0, x + 0.5, sigmoid(x))


def blocks(M, H, n):
  return [M[..., k * H:(k + 1) * H] for k in range(n)]


def _dense(name, p, xt, h, c, H):
  W, U = p["w_x"], p["w_rec"]
  b = p.get("b", np.zeros(W.shape[1]))
  if name == "linear_matrix":
    return xt @ W + h @ U, c
  if name == "elman":
    return np.tanh(xt @ W + h @ U + b), c
  if name == "lstm":
    i, f, z, o = [xw + hu + bb for xw, hu, bb in zip(blocks(xt @ W, H, 4), blocks(h @ U, H, 4),
                                                       blocks(b, H, 4))]
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(z)
    return sigmoid(o) * np.tanh(c), c
  # gru: r, z, n; the reset gate after the recurrent product
  x_r, x_z, x_n = blocks(xt @ W + b, H, 3)
  h_r, h_z, h_n = blocks(h @ U + p["b_rec"], H, 3)
  r, z = sigmoid(x_r + h_r), sigmoid(x_z + h_z)
  return (1 - z) * np.tanh(x_n + r * h_n) + z * h, c


def _diagonal(name, p, k, h, H):
  """One step of an element-wise linear cell, from its projected input ``k``."""
  if name == "linear":  # notes 003: s_t = x_t w_x + s_{t-1} * w_rec
    return k + h * p["w_rec"]
  if name == "diagonal":
    return sigmoid(p["a_logit"]) * h + k
  if name == "mingru":  # h = (1 - z) h + z g(Linear_h x)
    z = sigmoid(k[..., :H])
    return (1 - z) * h + z * g(k[..., H:])
  if name == "minlstm":  # f' = f / (f + i), i' = i / (f + i)
    f, i = sigmoid(k[..., :H]), sigmoid(k[..., H:2 * H])
    return f / (f + i) * h + i / (f + i) * g(k[..., 2 * H:])
  if name == "rglru":  # a_t = exp(-c r_t softplus(Lambda)); h = a h + sqrt(1 - a^2) (i * u)
    u, i, r = blocks(k, H, 3)
    a = np.exp(-8.0 * sigmoid(r) * np.log1p(np.exp(p["a_param"])))
    return a * h + np.sqrt(1 - a ** 2) * (sigmoid(i) * u)
  raise KeyError(name)


def _lru(p, x, H):
  """h_t = lambda h_{t-1} + gamma B x_t, y_t = Re(C h_t) + D x_t (Orvieto et al. 2023)."""
  N = p["nu_log"].shape[0]
  lam = np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))
  B = p["w_x"][:, :N] + 1j * p["w_x"][:, N:2 * N]
  D = p["w_x"][:, 2 * N:]
  C = p["c_re"] + 1j * p["c_im"]
  h, ys = np.zeros((x.shape[0], N), complex), []
  for t in range(x.shape[1]):
    h = lam * h + np.exp(p["gamma_log"]) * (x[:, t] @ B)
    ys.append((h @ C).real + x[:, t] @ D)
  return ys[-1], np.stack(ys, 1)


def _mlstm(cell, p, x):
  """xLSTM's mLSTM, unstabilized: C = f C + i v k^T, n = f n + i k,
  h = o * C q / max(|n q|, 1), i = exp(i~), f = sigmoid(f~), o = sigmoid(o~)."""
  H, NH, dh = cell.hidden, cell.num_heads, cell.head_dim
  B, T, _ = x.shape
  C, n, ys = np.zeros((B, NH, dh, dh)), np.zeros((B, NH, dh)), []
  for t in range(T):
    xp = x[:, t] @ p["w_x"] + p["b"]
    q, k, v = [a.reshape(B, NH, dh) for a in blocks(xp, H, 3)]
    k = k / np.sqrt(dh)
    i = np.exp(xp[:, 3 * H:3 * H + NH])[..., None]
    f = sigmoid(xp[:, 3 * H + NH:3 * H + 2 * NH])[..., None]
    o = sigmoid(xp[:, 3 * H + 2 * NH:])
    C = f[..., None] * C + i[..., None] * v[..., :, None] * k[..., None, :]
    n = f * n + i * k
    num = np.einsum("bnij,bnj->bni", C, q)
    den = np.maximum(np.abs(np.einsum("bnj,bnj->bn", n, q)), 1.0)[..., None]
    ys.append(o * (num / den).reshape(B, H))
  return ys[-1], np.stack(ys, 1)


def numpy_unroll(name, cell, p, x):
  """Reference implementations, one time step at a time: ``(h_T, y_BxTxH)``."""
  p = {k: np.asarray(v, np.float64) for k, v in p.items()}
  x = np.asarray(x, np.float64)
  B, T, _ = x.shape
  H = cell.hidden
  if name == "lru":
    return _lru(p, x, H)
  if name == "mlstm":
    return _mlstm(cell, p, x)
  h, c, ys = np.zeros((B, H)), np.zeros((B, H)), []
  for t in range(T):
    if isinstance(cell, cells.DenseCell):
      h, c = _dense(name, p, x[:, t], h, c, H)
    else:
      h = _diagonal(name, p, x[:, t] @ p["w_x"] + p.get("b", 0.0), h, H)
    ys.append(h)
  return h, np.stack(ys, 1)


REFERENCED = ("elman", "linear_matrix", "lstm", "gru", "linear", "diagonal", "lru", "mingru",
              "minlstm", "rglru", "mlstm")


def test_every_registered_cell_has_a_numpy_reference():
  """A new cell is registered with its paper's equations here, or this fails."""
  assert set(cells.names()) <= set(REFERENCED), set(cells.names()) - set(REFERENCED)


def random_params(cell, key, D):
  """Non-zero biases too, so a misplaced bias cannot hide (one compiled program)."""
  def draw(key):
    p = cell.init(key, D)
    return {k: v + 0.1 * jax.random.normal(jax.random.fold_in(key, i), v.shape)
            for i, (k, v) in enumerate(sorted(p.items()))}
  return jax.jit(draw)(key)


@pytest.mark.parametrize("name", cells.names())
@pytest.mark.parametrize("fast_grad", [True, False])
def test_cell_matches_numpy_loop(name, fast_grad):
  B, T, D, H = 3, 6, 4, 8
  cell = cells.make(name, H)
  p = random_params(cell, jax.random.key(0), D)
  x = np.random.default_rng(0).standard_normal((B, T, D)).astype(np.float32)
  carry, y = jax.jit(lambda p, x: recurrence.unroll(cell, p, x, fast_grad=fast_grad))(p, x)
  h_ref, y_ref = numpy_unroll(name, cell, p, x)
  np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(cell.output(carry), h_ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", cells.names())
def test_step_is_one_step_of_the_unroll(name):
  B, T, D, H = 2, 5, 3, 4
  cell = cells.make(name, H)
  p = random_params(cell, jax.random.key(1), D)
  x = jnp.asarray(np.random.default_rng(1).standard_normal((B, T, D)), jnp.float32)

  @jax.jit
  def both(p, x):
    c, ys = cell.zero_carry((B,)), []
    for t in range(T):
      c, y_t = cell.step(p, c, cell.project(p, x[:, t]))
      ys.append(y_t)
    return recurrence.unroll(cell, p, x), (c, jnp.stack(ys, 1))

  (carry, y), (c, y_steps) = both(p, x)
  np.testing.assert_allclose(y_steps, y, rtol=1e-5, atol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), c, carry)


def test_linear_cell_is_notes_003():
  """s_t = x_t*w_x + s_{t-1}*w_rec with w = 1 counts the ones."""
  cell = cells.linear(1)
  p = {"w_x": jnp.ones((1, 1)), "w_rec": jnp.ones((1,))}
  x = jnp.asarray([[0, 1, 0, 0, 0, 0, 0, 0, 0, 1], [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]],
                  jnp.float32)[..., None]
  for scan in ("sequential", "associative", "chunked"):
    carry, _ = recurrence.unroll(cells.make("linear", 1, scan=scan), p, x)
    np.testing.assert_allclose(carry[:, 0], [2.0, 3.0])
  assert cell.init(jax.random.key(0), 1)["w_rec"].shape == (1,)


def test_lstm_gate_layout_and_forget_bias():
  cell = cells.LSTM(7)
  p = cell.init(jax.random.key(0), 3)
  assert p["w_x"].shape == (3, 28) and p["w_rec"].shape == (7, 28) and p["b"].shape == (28,)
  np.testing.assert_array_equal(p["b"][7:14], 1.0)   # f block
  np.testing.assert_array_equal(p["b"][:7], 0.0)     # i block


def test_papers_initialisations():
  H, N = 64, 64
  lru = cells.make("lru", H).init(jax.random.key(0), 16)
  radius = np.exp(-np.exp(np.asarray(lru["nu_log"])))
  assert 0.9 <= radius.min() and radius.max() <= 0.999        # |lambda| on the ring
  np.testing.assert_allclose(np.exp(lru["gamma_log"]), np.sqrt(1 - radius ** 2), rtol=1e-4)
  assert np.exp(np.asarray(lru["theta_log"])).max() <= np.pi / 10
  rg = cells.make("rglru", H).init(jax.random.key(0), 16)
  a = np.exp(-np.log1p(np.exp(np.asarray(rg["a_param"]))))   # a = exp(-softplus(Lambda))
  assert 0.9 - 1e-6 <= a.min() and a.max() <= 0.999 + 1e-6
  m = cells.make("mlstm", H, heads=4).init(jax.random.key(0), 16)
  f_bias = np.asarray(m["b"][3 * H + 4:3 * H + 8])
  np.testing.assert_allclose(f_bias, np.linspace(3.0, 6.0, 4), rtol=1e-6)
  np.testing.assert_array_equal(m["w_x"][:, 3 * H:3 * H + 8], 0.0)   # the gates' kernels
  del N


def test_inv_sqrt_fan_in_bounds():
  w = initializers.uniform_inv_sqrt_fan_in()(jax.random.key(0), (400, 50))
  assert float(jnp.max(jnp.abs(w))) <= 1 / 20 and float(jnp.max(jnp.abs(w))) > 0.045
  with pytest.raises(ValueError, match="Unknown initializer"):
    initializers.get("nope")


def test_unknown_cell_or_option_is_a_clear_error():
  with pytest.raises(ValueError, match="expected one of"):
    cells.make("transformer", 4)
  with pytest.raises(ValueError, match="has no option"):
    cells.make("lru", 4, forget_bias=1.0)
  with pytest.raises(ValueError, match="Unknown scan"):
    cells.make("mingru", 4, scan="parallel")
  assert cells.make_supported("lru", 4, forget_bias=1.0).hidden == 4
