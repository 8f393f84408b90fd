"""The mLSTM of xLSTM (Beck et al. 2024): a matrix memory per head, linear in the state.

Per head, with ``q, k, v`` of ``dh`` units (``k`` scaled by ``1/sqrt(dh)``), an
exponential input gate ``i_t = exp(i~_t)`` and a sigmoid forget gate ``f_t``::

    C_t = f_t C_{t-1} + i_t v_t k_t^T        n_t = f_t n_{t-1} + i_t k_t
    h_t = o_t * (C_t q_t) / max(|n_t . q_t|, 1)

The state is stored stabilized, as xLSTM does: ``m_t = max(log f_t + m_{t-1}, i~_t)``
and ``S~_t = [C_t; n_t^T] exp(-m_t)`` (``n`` as one more row of ``C``: the value
``1``), so no ``exp`` overflows; ``S~_t = f'_t S~_{t-1} + i'_t [v_t; 1] k_t^T`` with
``f' = exp(log f_t + m_{t-1} - m_t)`` and ``i' = exp(i~_t - m_t)``, both <= 1, is an
element-wise linear recurrence (the forget gate broadcast over the matrix). Hence
three forms, equal up to float rounding:

* ``sequential`` / ``associative``: ``m`` by one max-plus scan, then
  :func:`lib.nn.scans.linear_scan` over the materialised ``T x B x NH x (dh+1) x dh``
  updates (memory ``dh`` times the output's);
* ``chunked``: xLSTM's chunkwise form. A sequential scan over chunks of ``L``
  steps carries ``S~`` and ``m`` across chunk ends; inside a chunk the outputs are
  one attention-like product with the gate matrix ``D_js = exp(b_j - b_s + i~_s)``
  (``b`` the chunk's cumulative ``log f``). Memory: one state per chunk and ``L x L``
  per chunk.
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from lib.errors import ConfigError
from lib.nn import scans
from lib.nn.cells.base import LinearCell, _last_real, acc_dtype, register

# platform -> ((longest T, form), ...), forward + backward at batch 8, hidden 256, 4 heads
# (``python -m launch.bench scans_mlstm``). cpu: measured, x86_64 2 cores, jax 0.10.2,
# 2026-12-06: chunked 4.3-7.8x the materialised sequential form from T = 16 to 4,096.
# gpu, tpu: not measured here; chunked, the form of xLSTM's GPU kernels.
AUTO_RULES = {
    "cpu": ((math.inf, scans.ScanType.CHUNKED),),
    "gpu": ((math.inf, scans.ScanType.CHUNKED),),
    "tpu": ((math.inf, scans.ScanType.CHUNKED),),
}


@register("mlstm")
@dataclasses.dataclass(frozen=True)
class MLSTM(LinearCell):
  """mLSTM with ``heads`` heads of ``hidden / heads`` units (0: 4, 2 or 1, the
  largest that divides ``hidden``). Blocks of ``w_x``: ``(q, k, v, i~, f~, o)``.
  Initialisation as xLSTM's: ``q, k, v, o`` kernels N(0, 2/(5 D)); the gates'
  kernels zero, input-gate bias N(0, 0.1), forget-gate biases from 3 to 6 over
  the heads. The carry is ``(h, S~, m)``."""
  heads: int = 0
  carries_output = True

  def __post_init__(self):
    super().__post_init__()
    if self.hidden % self.num_heads:
      raise ConfigError(f"mlstm: hidden={self.hidden} is not divisible by heads={self.heads}.")

  @property
  def num_heads(self) -> int:
    return self.heads or next(n for n in (4, 2, 1) if self.hidden % n == 0)

  @property
  def head_dim(self) -> int:
    return self.hidden // self.num_heads

  @property
  def proj_width(self):
    return 4 * self.hidden + 2 * self.num_heads

  def doubled(self):
    return dataclasses.replace(self, hidden=2 * self.hidden, heads=2 * self.num_heads)

  def join(self, first, second):
    return tuple(jnp.concatenate([a, b], 1 if a.ndim > 2 else -1) for a, b in zip(first, second))

  def init_input(self, key, in_dim):
    H, NH, pd = self.hidden, self.num_heads, self.param_dtype
    k_w, k_i = jax.random.split(key)
    w = jax.random.normal(k_w, (in_dim, 4, H), pd) * math.sqrt(2.0 / (5.0 * in_dim))
    w_x = jnp.concatenate([w[:, 0], w[:, 1], w[:, 2], jnp.zeros((in_dim, 2 * NH), pd), w[:, 3]], -1)
    b = jnp.concatenate([jnp.zeros((3 * H,), pd), 0.1 * jax.random.normal(k_i, (NH,), pd),
                         jnp.linspace(3.0, 6.0, NH, dtype=pd), jnp.zeros((H,), pd)])
    return {"w_x": w_x, "b": b} if self.use_bias else {"w_x": w_x}

  def zero_state(self, batch_shape, dtype=jnp.float32):
    NH, dh, acc = self.num_heads, self.head_dim, acc_dtype(dtype)
    return (jnp.zeros((*batch_shape, NH, dh + 1, dh), acc), jnp.zeros((*batch_shape, NH), acc))

  def zero_carry(self, batch_shape, dtype=jnp.float32):
    return (jnp.zeros((*batch_shape, self.hidden), acc_dtype(dtype)),
            *self.zero_state(batch_shape, dtype))

  def _gates(self, xp):
    """``q, k, [v; 1]`` (``... x NH x dh``), ``log i, log f`` (``... x NH``), ``o``."""
    H, NH, dh = self.hidden, self.num_heads, self.head_dim
    heads = lambda a: a.reshape(*a.shape[:-1], NH, dh)  # noqa: E731
    q, k, v = heads(xp[..., :H]), heads(xp[..., H:2 * H]) / math.sqrt(dh), heads(xp[..., 2 * H:3 * H])
    log_i = xp[..., 3 * H:3 * H + NH]
    log_f = jax.nn.log_sigmoid(xp[..., 3 * H + NH:3 * H + 2 * NH])
    v1 = jnp.concatenate([v, jnp.ones_like(v[..., :1])], -1)
    return q, k, v1, log_i, log_f, jax.nn.sigmoid(xp[..., 3 * H + 2 * NH:])

  def _output(self, num_den, m, o):
    """``o * (C q) / max(|n . q|, 1)`` in stabilized terms: ``max(|n~ . q|, exp(-m))``."""
    dh = self.head_dim
    den = jnp.maximum(jnp.abs(num_den[..., dh:]), jnp.exp(-m)[..., None])
    h = num_den[..., :dh] / den
    return o * h.reshape(*h.shape[:-2], self.hidden)

  def step(self, params, carry, xp_t):
    carry, y = dataclasses.replace(self, scan="sequential").run(params, xp_t[None], None, carry)
    return carry, y[0]

  def run(self, params, xp_TxBxG, m_TxBx1, carry0, *, reverse=False, unroll=None,
          fast_grad=True):
    if reverse:  # the reversed sequence, forwards
      flip = lambda a: None if a is None else jnp.flip(a, 0)  # noqa: E731
      carry, y = self.run(params, flip(xp_TxBxG), flip(m_TxBx1), carry0, unroll=unroll,
                          fast_grad=fast_grad)
      return carry, jnp.flip(y, 0)
    q, k, v1, log_i, log_f, o = self._gates(xp_TxBxG)
    if m_TxBx1 is not None:  # a masked step: f = 1, i = 0
      log_f = jnp.where(m_TxBx1 > 0, log_f, 0.0)
      log_i = jnp.where(m_TxBx1 > 0, log_i, -jnp.inf)
    h0, S0, m0 = carry0
    kind = scans.resolve(self.scan, xp_TxBxG.shape[0], rules=AUTO_RULES)
    if kind is scans.ScanType.CHUNKED:
      num_den, m, (S_T, m_T) = self._chunkwise(q, k, v1, log_i, log_f, S0, m0)
    else:
      num_den, m, (S_T, m_T) = self._materialized(q, k, v1, log_i, log_f, S0, m0, kind,
                                                  unroll, fast_grad)
    y = self._output(num_den, m, o)
    if m_TxBx1 is not None:
      y = jnp.where(m_TxBx1 > 0, y, 0.0)
    return (_last_real(y, m_TxBx1, h0, False), S_T, m_T), y

  def _materialized(self, q, k, v1, log_i, log_f, S0, m0, kind, unroll, fast_grad):
    m = scans.max_plus_scan(log_f, log_i, m0)
    m_prev = jnp.concatenate([m0[None], m[:-1]])
    a = jnp.exp(log_f + m_prev - m)[..., None, None]
    b = jnp.exp(log_i - m)[..., None, None] * v1[..., :, None] * k[..., None, :]
    S = scans.linear_scan(a, b, S0, scan=kind, unroll=unroll, fast_grad=fast_grad)
    return jnp.einsum("tbnij,tbnj->tbni", S, q), m, (S[-1], m[-1])

  def _chunkwise(self, q, k, v1, log_i, log_f, S0, m0):
    T = q.shape[0]
    L = self.chunk or min(64, max(16, 2 ** math.ceil(math.log2(T))))
    C = -(-T // L)
    pad = C * L - T

    def chunks(a, fill):
      if pad:
        a = jnp.concatenate([a, jnp.full((pad, *a.shape[1:]), fill, a.dtype)])
      return a.reshape(C, L, *a.shape[1:])

    xs = (chunks(q, 0.0), chunks(k, 0.0), chunks(v1, 0.0), chunks(log_i, -jnp.inf),
          chunks(log_f, 0.0))
    (S_T, m_T), (num_den, m) = jax.lax.scan(_chunk_step, (S0, m0), xs)
    flat = lambda a: a.reshape(C * L, *a.shape[2:])[:T]  # noqa: E731
    return flat(num_den), flat(m), (S_T, m_T)


def _chunk_step(carry, xs):
  """One chunk of ``L`` steps: its outputs from the state entering it and the
  chunk's own steps (an ``L x L`` gate matrix), and the state leaving it."""
  S_prev, m_prev = carry                         # B x NH x (dh+1) x dh, B x NH
  q, k, v1, log_i, log_f = xs                     # L x B x NH x ...
  L = q.shape[0]
  b = jnp.cumsum(log_f, 0)                        # L x B x NH
  causal = (jnp.arange(L)[:, None] >= jnp.arange(L)[None, :])[:, :, None, None]
  log_D = jnp.where(causal, b[:, None] - b[None, :] + log_i[None, :], -jnp.inf)  # j x s x B x NH
  log_inter = b + m_prev[None]
  m = jnp.maximum(log_inter, jnp.max(log_D, 1))   # L x B x NH: the sequential m_t
  W = jnp.exp(log_D - m[:, None]) * jnp.einsum("jbnd,sbnd->jsbn", q, k)
  num_den = (jnp.einsum("jsbn,sbne->jbne", W, v1)
             + jnp.exp(log_inter - m)[..., None] * jnp.einsum("bned,jbnd->jbne", S_prev, q))
  m_end = m[-1]
  w_end = jnp.exp(b[-1][None] - b + log_i - m_end[None])  # s x B x NH
  S_end = (jnp.exp(b[-1] + m_prev - m_end)[..., None, None] * S_prev
           + jnp.einsum("sbn,sbne,sbnd->bned", w_end, v1, k))
  return (S_end, m_end), (num_den, m)
