"""Unrolling a cell over time with ``jax.lax.scan``: masks, direction, bidirectional.

The API is batch-major (``x_BxTxD``); the scan itself runs time-major. Masked
steps freeze the carry (notes 000's ``masked_step``: ``switch(mask, new, old)``)
and emit zeros, so padding changes neither the final state nor any gradient.

Speed: the input product ``x @ w_x`` is one matrix product for all steps,
outside the scan. With ``fast_grad=True`` (the default) the backward pass also
computes the recurrent weight's gradient as one product over all steps,
``dW_rec = sum_t h_{t-1}^T dz_t`` (as cuDNN and PyTorch do), instead of the
per-step product and accumulation that autodiff of ``scan`` produces; the scan
in the backward pass then only carries ``dz_t @ w_rec^T``. This is a
``jax.custom_vjp``: use ``fast_grad=False`` for forward-mode autodiff (``jvp``,
Hessian-vector products).
"""
from __future__ import annotations

import functools
from typing import Any, Optional

import jax
import jax.numpy as jnp

from lib.nn.cells import Cell, Params


def _combine_masked(cell: Cell, extra, carry, xp_t, hw_t, m_t):
  new_c, y_t = cell.combine(extra, carry, xp_t, hw_t)
  if m_t is None:
    return new_c, y_t
  new_c = jax.tree.map(lambda n, o: jnp.where(m_t, n, o), new_c, carry)
  return new_c, jnp.where(m_t, y_t, 0.0)


def _scan_plain(cell, reverse, unroll, w_rec, extra, xp_TxBxG, m_TxBx1, carry0):
  def body(c, inputs):
    xp_t, m_t = inputs
    return _combine_masked(cell, extra, c, xp_t, cell.output(c) @ w_rec, m_t)
  return jax.lax.scan(body, carry0, (xp_TxBxG, m_TxBx1), reverse=reverse, unroll=unroll)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _scan_fast(cell, reverse, unroll, w_rec, extra, xp_TxBxG, m_TxBx1, carry0):
  return _scan_plain(cell, reverse, unroll, w_rec, extra, xp_TxBxG, m_TxBx1, carry0)


def _scan_fast_fwd(cell, reverse, unroll, w_rec, extra, xp_TxBxG, m_TxBx1, carry0):
  def body(c, inputs):
    xp_t, m_t = inputs
    hw_t = cell.output(c) @ w_rec
    new_c, y_t = _combine_masked(cell, extra, c, xp_t, hw_t, m_t)
    return new_c, (y_t, c, hw_t)  # keep the previous carry and h@W for the backward pass
  carry, (y, prev_carries, hw) = jax.lax.scan(body, carry0, (xp_TxBxG, m_TxBx1),
                                              reverse=reverse, unroll=unroll)
  return (carry, y), (w_rec, extra, xp_TxBxG, m_TxBx1, prev_carries, hw)


def _scan_fast_bwd(cell, reverse, unroll, res, cts):
  w_rec, extra, xp, m, prev_carries, hw = res
  ct_carry, ct_y = cts
  w_rec_T = jnp.transpose(w_rec)  # transposed once, outside the loop: see below

  def body(ct_c, inputs):
    c_prev, xp_t, hw_t, m_t, ct_y_t = inputs
    if cell.additive:  # combine reads only xp + hw: one cotangent serves both (half the stacking)
      _, vjp = jax.vjp(lambda c, g, e: _combine_masked(cell, e, c, g, jnp.zeros_like(g), m_t),
                       c_prev, xp_t + hw_t, extra)
      d_c, d_hw, d_extra = vjp((ct_c, ct_y_t))
      d_xp = None
    else:
      _, vjp = jax.vjp(lambda c, x_, h_, e: _combine_masked(cell, e, c, x_, h_, m_t),
                       c_prev, xp_t, hw_t, extra)
      d_c, d_xp, d_hw, d_extra = vjp((ct_c, ct_y_t))
    _, out_vjp = jax.vjp(cell.output, c_prev)
    # A product with the transposed matrix inside the loop becomes XLA:CPU's slower
    # transposed-operand kernel (about 4x the forward product's time for the variational
    # RNN's per-example 50 x 50 weights); the copy made once outside keeps it plain.
    d_c = jax.tree.map(jnp.add, d_c, out_vjp(d_hw @ w_rec_T)[0])
    return d_c, (d_xp, d_hw, d_extra)

  ct_carry0, (d_xp, d_hw, d_extra) = jax.lax.scan(
      body, ct_carry, (prev_carries, xp, hw, m, ct_y), reverse=not reverse, unroll=unroll)
  d_xp = d_hw if d_xp is None else d_xp
  h_prev = cell.output(prev_carries)
  d_w_rec = jnp.einsum("tbh,tbg->hg", h_prev, d_hw)  # one product over all steps
  d_extra = jax.tree.map(lambda g: g.sum(axis=0), d_extra)
  d_m = None if m is None else jnp.zeros_like(m)
  return d_w_rec, d_extra, d_xp, d_m, ct_carry0


_scan_fast.defvjp(_scan_fast_fwd, _scan_fast_bwd)


def unroll(cell: Cell, params: Params, x_BxTxD: jax.Array, *,
           mask_BxT: Optional[jax.Array] = None,
           initial_carry: Any = None,
           reverse: bool = False,
           unroll: int | bool = 1,
           fast_grad: bool = True,
           projected: bool = False) -> tuple[Any, jax.Array]:
  """Runs ``cell`` over the time axis.

  Args:
    cell: a cell from :mod:`lib.nn.cells`.
    params: its parameters.
    x_BxTxD: inputs, batch-major.
    mask_BxT: 1 for real steps, 0 for padding; ``None`` means all real.
    initial_carry: defaults to the cell's zero carry.
    reverse: process time from last to first. With right-padded masks the
      reverse pass starts at each sequence's own last real step.
    unroll: passed to ``lax.scan`` (an int, or ``True`` for a full unroll).
    fast_grad: one-product gradient of ``w_rec`` (see the module docstring).
    projected: ``x_BxTxD`` is already the input projection ``x @ w_x + b``
      (``D = G*H``), e.g. rows of an embedding table (notes 001's ``U[:, x_t]``).

  Returns:
    ``(final_carry, y_BxTxH)``; ``y`` is zero at masked steps.
  """
  batch = x_BxTxD.shape[:1]
  carry = cell.zero_carry(batch, x_BxTxD.dtype) if initial_carry is None else initial_carry
  xp_TxBxG = jnp.swapaxes(x_BxTxD if projected else cell.project(params, x_BxTxD), 0, 1)
  m_TxBx1 = None
  if mask_BxT is not None:
    m_TxBx1 = jnp.swapaxes(mask_BxT, 0, 1)[..., None].astype(xp_TxBxG.dtype)
  if unroll is True:
    unroll = x_BxTxD.shape[1]
  scan = _scan_fast if fast_grad else _scan_plain
  carry, y_TxBxH = scan(cell, reverse, int(unroll), params["w_rec"], cell.extra_params(params),
                        xp_TxBxG, m_TxBx1, carry)
  return carry, jnp.swapaxes(y_TxBxH, 0, 1)


def bidirectional(fwd: Cell, bwd: Cell, params: dict[str, Params], x_BxTxD: jax.Array, *,
                  mask_BxT: Optional[jax.Array] = None,
                  unroll: int | bool = 1, fast_grad: bool = True
                  ) -> tuple[tuple[Any, Any], jax.Array]:
  """A forward and a reverse pass (params ``{'fwd': ..., 'bwd': ...}``).

  Returns ``((fwd_carry, bwd_carry), y_BxTx(Hf+Hb))`` with the two outputs
  concatenated per step, as Keras' ``Bidirectional(merge_mode='concat')``.
  """
  kw = dict(mask_BxT=mask_BxT, unroll=unroll, fast_grad=fast_grad)
  cf, yf = _unroll(fwd, params["fwd"], x_BxTxD, **kw)
  cb, yb = _unroll(bwd, params["bwd"], x_BxTxD, reverse=True, **kw)
  return (cf, cb), jnp.concatenate([yf, yb], axis=-1)


_unroll = unroll  # `bidirectional` shadows the name with its own argument.


def init_bidirectional(fwd: Cell, bwd: Cell, key: jax.Array, in_dim: int) -> dict[str, Params]:
  kf, kb = jax.random.split(key)
  return {"fwd": fwd.init(kf, in_dim), "bwd": bwd.init(kb, in_dim)}


def last_real_output(y_BxTxH: jax.Array, mask_BxT: jax.Array) -> jax.Array:
  """The output at each sequence's last real step (right padding)."""
  last = jnp.maximum(mask_BxT.sum(axis=1).astype(jnp.int32) - 1, 0)
  return jnp.take_along_axis(y_BxTxH, last[:, None, None], axis=1)[:, 0]


def unroll_truncated(cell: Cell, params: Params, x_BxTxD: jax.Array, truncate: int, *,
                     initial_carry: Any = None, projected: bool = False
                     ) -> tuple[Any, jax.Array]:
  """Like :func:`unroll`, but the gradient of each step's output flows back
  through at most ``truncate`` earlier steps (notes 001's ``bptt_truncate``).

  Output ``t`` depends on the inputs ``t-truncate .. t`` and on the state
  ``s_{t-truncate-1}``, which is treated as a constant: exactly the gradient
  the notes' numpy ``bptt`` accumulates. Forward values equal :func:`unroll`'s.

  How: one forward scan without gradient gives every state; then, for all
  ``t`` at once (batch ``B*T``), a scan of ``truncate + 1`` steps recomputes
  ``s_t`` from the stopped ``s_{t-truncate-1}``. The cost is ``truncate + 1``
  times the recurrent work, all of it batched.
  """
  B, T = x_BxTxD.shape[:2]
  k = int(truncate)
  xp = x_BxTxD if projected else cell.project(params, x_BxTxD)
  carry0 = cell.zero_carry((B,), xp.dtype) if initial_carry is None else initial_carry

  stopped = jax.lax.stop_gradient
  frozen = stopped(params)  # the window start states are constants, w.r.t. the weights too

  def body(c, xp_t):
    c = cell.step(frozen, c, xp_t)[0]
    return c, c

  final, carries_TxB = jax.lax.scan(body, stopped(carry0), stopped(jnp.swapaxes(xp, 0, 1)))
  # Window start state for output t: s_{t-k-1} (the initial carry when t-k-1 < 0).
  all_c = jax.tree.map(lambda c0, cs: jnp.concatenate([c0[None], cs], 0), stopped(carry0),
                       carries_TxB)                                   # index j holds s_{j-1}
  start_idx = jnp.clip(jnp.arange(T) - k, 0, T)                       # s_{t-k-1} is at t-k
  starts = jax.tree.map(lambda a: jnp.swapaxes(a[start_idx], 0, 1).reshape(B * T, *a.shape[2:]),
                        all_c)
  pos = jnp.arange(T)[:, None] - k + jnp.arange(k + 1)[None, :]       # T x (k+1) input positions
  valid = (pos >= 0).astype(xp.dtype)
  xw = xp[:, jnp.clip(pos, 0, T - 1)]                                 # B x T x (k+1) x G
  xw = jnp.moveaxis(xw.reshape(B * T, k + 1, -1), 1, 0)               # (k+1) x BT x G
  vw = jnp.broadcast_to(valid.T[:, None, :, None], (k + 1, B, T, 1)).reshape(k + 1, B * T, 1)

  # The windows' steps as one masked scan (a position before 0 keeps the start state),
  # with the one-product gradient of w_rec over every window and step.
  last, _ = _scan_fast(cell, False, 1, params["w_rec"], cell.extra_params(params), xw, vw,
                       starts)
  y_BxTxH = cell.output(last).reshape(B, T, -1)
  return final, y_BxTxH
