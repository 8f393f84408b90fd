"""LSTM and GRU layers as one fused kernel call each way (time-major, float32).

Both functions equal :func:`lib.nn.scans.dense_scan` on :class:`lib.nn.cells.LSTM` and
:class:`lib.nn.cells.GRU` (the tests hold them equal in outputs, final carries and every
gradient, with masks, in both directions and under ``vmap``). The kernel runs the
recurrence: each step's recurrent product as one BLAS ``sgemm`` added onto that step's
gate block, and the gates. XLA keeps what is one large product over all steps: the
recurrent weight's gradient ``dW = sum_t h_{t-1}^T dz_t`` here, the input product and
its gradients in the caller. Under ``vmap`` (per-trial weights) each call takes the
whole batch of problems (``vmap_method='broadcast_all'``) and loops over it inside.
"""
from __future__ import annotations

import functools
from typing import Optional

import jax
import jax.numpy as jnp

from lib.nn.kernels import build


def _mask(m_TxBx1: Optional[jax.Array], T: int, B: int) -> jax.Array:
  return jnp.ones((T, B), jnp.float32) if m_TxBx1 is None else m_TxBx1[..., 0].astype(jnp.float32)


def _outputs(hc_TxBxH, m_TxB, masked, reverse):
  """The final carry's index and the outputs, zero at masked steps."""
  y = jnp.where(m_TxB[..., None] != 0, hc_TxBxH, 0.0) if masked else hc_TxBxH
  return (0 if reverse else -1), y


# ------------------------------------------------------------------------------- LSTM
@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _lstm(reverse, masked, w_HxG, xp_TxBxG, m_TxB, h0_BxH, c0_BxH):
  return _lstm_fwd(reverse, masked, w_HxG, xp_TxBxG, m_TxB, h0_BxH, c0_BxH)[0]


def _lstm_fwd(reverse, masked, w_HxG, xp_TxBxG, m_TxB, h0_BxH, c0_BxH):
  T, B, G = xp_TxBxG.shape
  TBH = (T, B, G // 4)
  a, hc, cc = build.call("RnnlabLstmFwd", [xp_TxBxG.shape, TBH, TBH], xp_TxBxG, w_HxG,
                         h0_BxH, c0_BxH, m_TxB, reverse=reverse, aliases={0: 0})
  last, y = _outputs(hc, m_TxB, masked, reverse)
  return ((hc[last], cc[last]), y), (w_HxG, a, hc, cc, m_TxB, h0_BxH, c0_BxH)


def _lstm_bwd(reverse, masked, res, cts):
  w, a, hc, cc, m, h0, c0 = res
  (ct_h, ct_c), ct_y = cts
  dz, dh0, dc0, dw = build.call("RnnlabLstmBwd", [a.shape, h0.shape, h0.shape, w.shape], a,
                                w, cc, c0, m, ct_y, ct_h, ct_c, h0, hc, reverse=reverse,
                                aliases={0: 0})
  return dw, dz, jnp.zeros_like(m), dh0, dc0


_lstm.defvjp(_lstm_fwd, _lstm_bwd)


def lstm(w_HxG: jax.Array, xp_TxBxG: jax.Array, m_TxBx1: Optional[jax.Array], carry0, *,
         reverse: bool = False):
  """``((h_T, c_T), y_TxBxH)`` of an LSTM layer (gates i, f, z, o) given its input
  product plus bias ``xp``, recurrent weight ``w`` (``H x 4H``) and carry ``(h0, c0)``."""
  T, B, _ = xp_TxBxG.shape
  return _lstm(bool(reverse), m_TxBx1 is not None, w_HxG, xp_TxBxG, _mask(m_TxBx1, T, B),
               *carry0)


# -------------------------------------------------------------------------------- GRU
@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _gru(reverse, masked, w_HxG, b_rec_G, xp_TxBxG, m_TxB, h0_BxH):
  return _gru_fwd(reverse, masked, w_HxG, b_rec_G, xp_TxBxG, m_TxB, h0_BxH)[0]


def _gru_fwd(reverse, masked, w_HxG, b_rec_G, xp_TxBxG, m_TxB, h0_BxH):
  T, B, G = xp_TxBxG.shape
  H = G // 3
  a, hc, _ = build.call("RnnlabGruFwd", [(T, B, 4 * H), (T, B, H), (B, G)], xp_TxBxG, w_HxG,
                        b_rec_G, h0_BxH, m_TxB, reverse=reverse)
  last, y = _outputs(hc, m_TxB, masked, reverse)
  return (hc[last], y), (w_HxG, a, hc, m_TxB, h0_BxH)


def _gru_bwd(reverse, masked, res, cts):
  w, a, hc, m, h0 = res
  ct_h, ct_y = cts
  T, B, _ = a.shape
  G = w.shape[-1]
  dxp, dhw, dh0, dw = build.call("RnnlabGruBwd", [(T, B, G), (T, B, G), h0.shape, w.shape],
                                 w, a, hc, h0, m, ct_y, ct_h, reverse=reverse)
  return dw, dhw.sum(axis=(0, 1)), dxp, jnp.zeros_like(m), dh0


_gru.defvjp(_gru_fwd, _gru_bwd)


def gru(w_HxG: jax.Array, b_rec_G: Optional[jax.Array], xp_TxBxG: jax.Array,
        m_TxBx1: Optional[jax.Array], h0_BxH: jax.Array, *, reverse: bool = False):
  """``(h_T, y_TxBxH)`` of a GRU layer (gates r, z, n; the reset gate after the recurrent
  product, :class:`lib.nn.cells.GRU`) given ``xp``, ``w`` (``H x 3H``), ``b_rec``
  (``None``: no recurrent bias) and ``h0``."""
  T, B, G = xp_TxBxG.shape
  b_rec_G = jnp.zeros((G,), jnp.float32) if b_rec_G is None else b_rec_G
  return _gru(bool(reverse), m_TxBx1 is not None, w_HxG, b_rec_G, xp_TxBxG,
              _mask(m_TxBx1, T, B), h0_BxH)
