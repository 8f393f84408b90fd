"""Unrolling a cell over time: masks, direction, truncated BPTT (both directions and
layers of cells: :mod:`lib.nn.stacks`).

The API is batch-major (``x_BxTxD``); the scans run time-major. Masked steps
freeze the carry (notes 000's ``masked_step``: ``switch(mask, new, old)``) and
emit zeros, so padding changes neither the final state nor any gradient.

The input product ``x @ w_x + b`` is one matrix product for all steps, outside
the scan, except for a dense cell whose input is much narrower than its projection
(:class:`InputProduct`); the recurrence itself is the cell's ``run`` (:mod:`lib.nn.cells.base`),
which calls the scan algorithms of :mod:`lib.nn.scans`: for dense cells the
one-product gradient of ``w_rec`` (``fast_grad``), for linear cells the scan the
cell names (``scan='auto'`` picks by platform and length). ``fast_grad=False``
lets autodiff differentiate the scans themselves (forward-mode autodiff: ``jvp``,
Hessian-vector products).
"""
from __future__ import annotations

import dataclasses
import enum
from typing import Any, Optional

import jax
import jax.numpy as jnp

from lib.nn import scans, variational
from lib.errors import ConfigError
from lib.nn.cells import Cell, DenseCell, Params, acc_dtype


def _initial_carry(cell: Cell, batch: tuple[int, ...], acc, initial_carry):
  """The cell's zero carry, or ``initial_carry`` in the carry's own types."""
  zero = cell.zero_carry(batch, acc)
  if initial_carry is None:
    return zero
  return jax.tree.map(lambda c, z: jnp.asarray(c).astype(z.dtype), initial_carry, zero)


class InputProduct(enum.Enum):
  """Where a dense cell takes its input product ``x @ w_x + b``. ``HOISTED``: one product
  for all steps before the scan (its gradient through the scan's own backward pass,
  ``fast_grad``); ``IN_STEP``: inside each step, as Flax's cells do, differentiated by
  autodiff (:func:`lib.nn.scans.dense_scan_inputs`); ``AUTO``: ``IN_STEP`` where the
  projection is at least :data:`IN_STEP_RATIO` times wider than the input (on the
  backends listed there), where storing
  the ``T x B x G`` products and their cotangents costs more than one large product
  saves. Projected inputs (embedding rows) and the other cell families are hoisted."""
  AUTO = "auto"
  HOISTED = "hoisted"
  IN_STEP = "in_step"


# ``AUTO``'s rule per backend: in step from this projection / input width ratio on; a
# backend not listed hoists. ``launch.bench input_product`` (x86_64, 2 cores, jax 0.10.2
# CPU): the LSTM's, GRU's and Elman's train steps at ratios 8-32 run faster in step,
# at 1-4 hoisted.
IN_STEP_RATIO = {"cpu": 8}


def _input_product(value: str | InputProduct) -> InputProduct:
  try:
    return InputProduct(value)
  except ValueError:
    raise ConfigError(f"unroll: input_product={value!r}; expected one of "
                      f"{[k.value for k in InputProduct]}.") from None


def in_step(cell: Cell, in_dim: int, input_product: str | InputProduct = InputProduct.AUTO,
            projected: bool = False, fused: bool = False) -> bool:
  """Whether :func:`unroll` takes this cell's input product inside the step; ``fused``:
  the recurrence runs through the fused kernel, which takes the product hoisted."""
  kind = _input_product(input_product)
  if projected or not isinstance(cell, DenseCell) or kind is InputProduct.HOISTED:
    return False
  if fused:
    if kind is InputProduct.IN_STEP:
      raise ConfigError("unroll: kernel='fused' takes the input product hoisted; use "
                        "input_product='hoisted' or 'auto', or kernel='scan'.")
    return False
  ratio = IN_STEP_RATIO.get(jax.default_backend())
  return kind is InputProduct.IN_STEP or (ratio is not None and cell.proj_width >= ratio * in_dim)


def unroll(cell: Cell, params: Params, x_BxTxD: jax.Array, *,
           mask_BxT: Optional[jax.Array] = None,
           seq_lengths: Optional[jax.Array] = None,
           initial_carry: Any = None,
           reverse: bool = False,
           unroll: int | bool | None = None,
           fast_grad: bool = True,
           projected: bool = False,
           dtype: Any = None,
           input_product: str | InputProduct = InputProduct.AUTO,
           kernel: str | scans.DenseKernel = scans.DenseKernel.AUTO) -> tuple[Any, jax.Array]:
  """Runs ``cell`` over the time axis.

  Args:
    cell: a cell of :mod:`lib.nn.cells` (any family).
    params: its parameters.
    x_BxTxD: inputs ``(batch..., T, D)``: any number of leading batch axes, none
      included (one sequence ``(T, D)``, as Flax's ``nn.RNN``); the carry and the
      outputs keep them.
    mask_BxT: ``(batch..., T)``, 1 for real steps, 0 for padding; ``None`` means all real.
    seq_lengths: ``(batch...)`` real steps of each sequence (right padding), instead
      of ``mask_BxT``.
    initial_carry: defaults to the cell's zero carry.
    reverse: process time from last to first. With right-padded masks the
      reverse pass starts at each sequence's own last real step.
    unroll: ``lax.scan``'s unroll (an int, or ``True`` for a full unroll);
      ``None``: the family's default (1 for dense cells, the linear scan's tuned one).
    fast_grad: the scans' own backward passes (see the module docstring).
    projected: ``x_BxTxD`` is already the input projection ``x @ w_x + b``
      (``D = cell.proj_width``), e.g. rows of an embedding table (notes 001's ``U[:, x_t]``).
    dtype: the compute type (overrides the cell's ``dtype``; see :mod:`lib.nn.cells.base`).
    input_product: where a dense cell takes ``x @ w_x + b`` (:class:`InputProduct`).
    kernel: what runs a dense cell's recurrence (:class:`lib.nn.scans.DenseKernel`):
      ``auto`` runs an LSTM or GRU through the fused CPU kernels where they can run.

  Returns:
    ``(final_carry, y_BxTxH)``; ``y`` is zero at masked steps, in the compute type.
  """
  _refuse_flipout(params)
  x_BxTxD, batch = _flat(x_BxTxD, "x", 2)
  mask_BxT = _mask(mask_BxT, seq_lengths, batch, x_BxTxD.shape[1])
  if initial_carry is not None:
    initial_carry = jax.tree.map(lambda c: jnp.reshape(c, (-1, *jnp.shape(c)[len(batch):])),
                                 initial_carry)
  carry, y = _run(cell, params, x_BxTxD, mask_BxT, initial_carry, reverse, unroll, fast_grad,
                  projected, dtype, input_product, kernel)
  unflat = lambda a: jnp.reshape(a, (*batch, *a.shape[1:]))  # noqa: E731
  return jax.tree.map(unflat, carry), unflat(y)


def _refuse_flipout(params) -> None:
  """Cells read plain matrices: a flipout view (``variational.draw(..., 'flipout')``) is
  refused in one line naming the parameter."""
  flat = jax.tree_util.tree_flatten_with_path(
      params, is_leaf=lambda v: isinstance(v, variational.Flipout))[0]
  bad = [jax.tree_util.keystr(path) for path, v in flat if isinstance(v, variational.Flipout)]
  if bad:
    raise TypeError(f"unroll: parameter {bad[0]} is a flipout view; lib.nn.cells read plain "
                    "matrices: draw with 'example' or 'minibatch', or pass "
                    "variational.materialize(w) for each example's matrix.")


def _flat(x, name: str, core: int) -> tuple[jax.Array, tuple[int, ...]]:
  """``x`` with its leading batch axes (any number, none included) as one."""
  x = jnp.asarray(x)
  if x.ndim < core:
    raise ValueError(f"unroll: {name} has shape {x.shape}; expected (batch..., T, D): the time "
                     f"steps and the features last (one sequence: (T, D)).")
  batch = x.shape[:x.ndim - core]
  return x.reshape((-1, *x.shape[x.ndim - core:])), batch


def _mask(mask, seq_lengths, batch: tuple[int, ...], T: int) -> Optional[jax.Array]:
  """A ``B x T`` mask from ``mask_BxT`` or ``seq_lengths``, or ``None`` (all real)."""
  if mask is not None and seq_lengths is not None:
    raise ValueError("unroll: give mask_BxT or seq_lengths, not both.")
  if seq_lengths is not None:
    lengths = jnp.asarray(seq_lengths)
    if lengths.shape != batch:
      raise ValueError(f"unroll: seq_lengths has shape {lengths.shape}; expected the batch "
                       f"shape {batch} (one length per sequence).")
    return (jnp.arange(T) < lengths.reshape(-1, 1)).astype(jnp.float32)
  if mask is None:
    return None
  mask = jnp.asarray(mask)
  if mask.shape != (*batch, T):
    hint = " (lengths go in seq_lengths=)" if mask.shape == batch else ""
    raise ValueError(f"unroll: mask_BxT has shape {mask.shape}; expected {(*batch, T)}, 1 for "
                     f"real steps and 0 for padding{hint}.")
  return mask.reshape(-1, T)


def _run(cell, params, x_BxTxD, mask_BxT, initial_carry, reverse, unroll, fast_grad, projected,
         dtype, input_product=InputProduct.AUTO, kernel=scans.DenseKernel.AUTO):
  """:func:`unroll` on one batch axis."""
  if dtype is not None:
    cell = dataclasses.replace(cell, dtype=dtype)
  out_dtype = cell.compute_dtype(x_BxTxD, params)
  hoisted_acc = acc_dtype((x_BxTxD.dtype if projected else out_dtype)
                          if cell.dtype is None else cell.dtype)
  carry = _initial_carry(cell, x_BxTxD.shape[:1], hoisted_acc, initial_carry)
  fused = isinstance(cell, DenseCell) and _fused(cell, params, hoisted_acc, carry, fast_grad,
                                                 kernel, input_product)
  inside = in_step(cell, x_BxTxD.shape[-1], input_product, projected, fused)
  x_TxBxD = jnp.swapaxes(x_BxTxD, 0, 1)  # time-major before the projection: the narrower copy
  if inside:
    xs_TxBxD = x_TxBxD
    acc = acc_dtype(cell.dtype if cell.dtype is not None else out_dtype)
  else:
    xs_TxBxD = x_TxBxD if projected else cell.project(params, x_TxBxD)
    acc = acc_dtype(xs_TxBxD.dtype if cell.dtype is None else cell.dtype)
    xs_TxBxD = xs_TxBxD.astype(acc)
  carry = _initial_carry(cell, x_BxTxD.shape[:1], acc, initial_carry)
  m_TxBx1 = None
  if mask_BxT is not None:
    m_TxBx1 = jnp.swapaxes(mask_BxT, 0, 1)[..., None].astype(acc)
  if unroll is True:
    unroll = x_BxTxD.shape[1]
  unroll = None if unroll is None else int(unroll)
  if inside:
    carry, y_TxBxH = cell.run_inputs(params, xs_TxBxD, m_TxBx1, carry, acc=acc, reverse=reverse,
                                     unroll=unroll)
  elif isinstance(cell, DenseCell):
    carry, y_TxBxH = cell.run(params, xs_TxBxD, m_TxBx1, carry, reverse=reverse, unroll=unroll,
                              fast_grad=fast_grad, kernel=kernel)
  else:
    carry, y_TxBxH = cell.run(params, xs_TxBxD, m_TxBx1, carry, reverse=reverse, unroll=unroll,
                              fast_grad=fast_grad)
  return carry, jnp.swapaxes(y_TxBxH, 0, 1).astype(out_dtype)


def _fused(cell, params, acc, carry, fast_grad, kernel, input_product) -> bool:
  """Whether the dense cell's recurrence runs through the fused kernel (its hoisted
  input product in ``acc``); an explicit ``input_product='in_step'`` keeps ``auto`` on
  the scan, which takes it."""
  if _input_product(input_product) is InputProduct.IN_STEP and kernel == scans.DenseKernel.AUTO:
    return False
  w_rec = params["w_rec"]
  w_rec = jax.ShapeDtypeStruct(w_rec.shape, cell.dtype or w_rec.dtype)
  xp = jax.ShapeDtypeStruct((1, 1, cell.proj_width), acc)
  return scans.resolve_kernel(kernel, cell, w_rec, xp, carry, fast_grad) is scans.DenseKernel.FUSED


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
  ``t`` at once (batch ``B*T``), a masked run of ``truncate + 1`` steps
  recomputes ``s_t`` from the stopped ``s_{t-truncate-1}``. The cost is
  ``truncate + 1`` times the recurrent work, all of it batched.
  """
  B, T = x_BxTxD.shape[:2]
  k = int(truncate)
  xp = x_BxTxD if projected else cell.project(params, x_BxTxD)
  acc = acc_dtype(xp.dtype)
  xp = xp.astype(acc)
  carry0 = _initial_carry(cell, (B,), acc, initial_carry)

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
  valid = (pos >= 0).astype(acc)
  xw = xp[:, jnp.clip(pos, 0, T - 1)]                                 # B x T x (k+1) x G
  xw = jnp.moveaxis(xw.reshape(B * T, k + 1, -1), 1, 0)               # (k+1) x BT x G
  vw = jnp.broadcast_to(valid.T[:, None, :, None], (k + 1, B, T, 1)).reshape(k + 1, B * T, 1)

  # The windows' steps as one masked run (a position before 0 keeps the start state);
  # a dense cell's gradient of w_rec is one product over every window and step.
  last, _ = cell.run(params, xw, vw, starts, unroll=1)
  y_BxTxH = cell.output(last).reshape(B, T, -1)
  return final, y_BxTxH
