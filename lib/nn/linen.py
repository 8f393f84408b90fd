"""rnnlab's cells and fast unroll as Flax Linen modules.

``RNN(cell)`` takes any cell of :mod:`lib.nn.cells` and has the call signature
of ``flax.linen.RNN``; underneath it is :func:`lib.nn.recurrence.unroll`
(the input product hoisted out of the scan, the one-product gradient of
``w_rec``). Its parameters are the cell's own dict (``w_x``, ``w_rec``, ``b``,
...), so ``variables['params']`` of an ``RNN`` runs in the plain functions
unchanged, and back. ``Cell(cell)`` is one step, with the ``RNNCellBase``
interface (``__call__(carry, x_t)``, ``initialize_carry``), for a hand-written
loop or for ``flax.linen.RNN`` itself. ``flax.linen.Bidirectional`` takes two
``RNN`` modules as it takes two of its own::

    rnn = linen.RNN(cells.LSTM(hidden=64))
    y_BxTxH = rnn.apply(variables, x_BxTxD, seq_lengths=lengths_B)

Differences from ``flax.linen.RNN``, on purpose:

* outputs at padded steps (``t >= seq_lengths``) are **zero**; Flax leaves
  whatever the cell computed there. Final carries agree (both freeze at the
  last real step).
* carries have rnnlab's layout: the LSTM carry is ``(h, c)`` (Flax: ``(c, h)``);
  :mod:`lib.nn.flax_convert` converts carries and parameters.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from lib.nn import recurrence, variational
from lib.nn.cells import Cell as _Cell


def lengths_to_mask(seq_lengths_B: jax.Array, steps: int) -> jax.Array:
  """``mask_BxT``: 1 where ``t < seq_lengths[b]``."""
  return (jnp.arange(steps)[None, :] < seq_lengths_B[:, None]).astype(jnp.float32)


def flip_sequences(y_BxTxH: jax.Array, seq_lengths_B: Optional[jax.Array]) -> jax.Array:
  """Reverses each sequence's real part in time; padding stays at the end."""
  if seq_lengths_B is None:
    return y_BxTxH[:, ::-1]
  t_T = jnp.arange(y_BxTxH.shape[1])
  idx_BxT = jnp.where(t_T[None] < seq_lengths_B[:, None], seq_lengths_B[:, None] - 1 - t_T[None],
                      t_T[None])
  return jnp.take_along_axis(y_BxTxH, idx_BxT[..., None], axis=1)


def check_cell(cell: Any, wrapper: str) -> None:
  """A one-line ``TypeError`` when ``cell`` is not an rnnlab cell (a Flax cell, say)."""
  if not isinstance(cell, _Cell):
    kind = f"{type(cell).__module__}.{type(cell).__name__}"
    raise TypeError(f"{wrapper} takes a cell of lib.nn.cells (cells.make('lstm', 32), "
                    f"cells.LSTM(hidden=32)), not {kind}; a Flax cell's parameters convert "
                    "with lib.nn.flax_convert.")


def with_dtypes(cell: _Cell, dtype: Any = None, param_dtype: Any = None,
                wrapper: str = "lib.nn.linen") -> _Cell:
  """``cell`` (checked: :func:`check_cell`) with the wrapper's ``dtype`` / ``param_dtype``
  where they are given."""
  check_cell(cell, wrapper)
  changes = {k: v for k, v in (("dtype", dtype), ("param_dtype", param_dtype)) if v is not None}
  return dataclasses.replace(cell, **changes) if changes else cell


def cell_params(module: nn.Module, cell: _Cell, in_dim: int) -> dict[str, jax.Array]:
  """Declares ``cell``'s parameters on ``module`` (one Flax param per leaf).

  A flipout view (:mod:`lib.nn.flax_variational`) becomes this example's matrix."""
  shapes = jax.eval_shape(lambda k: cell.init(k, in_dim), jax.random.key(0))
  init = lambda name: lambda k: cell.init(k, in_dim)[name]
  return {name: variational.materialize(module.param(name, init(name))) for name in shapes}


def flax_unroll(cell: _Cell, params, inputs, *, initial_carry=None, seq_lengths=None,
                time_major=False, reverse=False, keep_order=False, unroll=None, fast_grad=True):
  """``(carry, outputs)`` with ``flax.linen.RNN``'s conventions over any number
  of leading batch axes (``inputs``: ``(*batch, T, D)``, or ``(T, *batch, D)``
  when ``time_major``). Shared by the Linen and NNX modules."""
  x = jnp.moveaxis(inputs, 0, -2) if time_major else inputs
  batch, (steps, dim) = x.shape[:-2], x.shape[-2:]
  x_BxTxD = x.reshape(-1, steps, dim)
  flat = lambda t: jax.tree.map(lambda a: a.reshape(-1, *a.shape[len(batch):]), t)
  carry0 = None if initial_carry is None else flat(initial_carry)
  lengths_B = None if seq_lengths is None else jnp.asarray(seq_lengths).reshape(-1)
  mask = None if lengths_B is None else lengths_to_mask(lengths_B, steps)
  carry, y_BxTxH = recurrence.unroll(cell, params, x_BxTxD, mask_BxT=mask, initial_carry=carry0,
                                     reverse=reverse, unroll=unroll, fast_grad=fast_grad)
  if reverse and not keep_order:
    y_BxTxH = flip_sequences(y_BxTxH, lengths_B)
  y = y_BxTxH.reshape(*batch, steps, -1)
  carry = jax.tree.map(lambda a: a.reshape(*batch, *a.shape[1:]), carry)
  return carry, (jnp.moveaxis(y, -2, 0) if time_major else y)


class RNN(nn.Module):
  """An rnnlab cell unrolled over time, called as ``flax.linen.RNN``.

  Attributes:
    cell: a cell of :mod:`lib.nn.cells` (``LSTM(hidden=64)``, ``cells.make('lru', 64)``, ...).
    return_carry, time_major, reverse, keep_order: defaults of the call's
      arguments of the same names (``flax.linen.RNN``'s meaning).
    unroll, fast_grad: passed to :func:`lib.nn.recurrence.unroll`.
    dtype, param_dtype: the cell's compute and parameter types, when given
      (``jnp.bfloat16`` compute: mixed precision, float32 accumulation).
  """
  cell: _Cell
  return_carry: bool = False
  time_major: bool = False
  reverse: bool = False
  keep_order: bool = False
  unroll: Optional[int] = None
  fast_grad: bool = True
  dtype: Any = None
  param_dtype: Any = None

  @nn.compact
  def __call__(self, inputs: jax.Array, *, initial_carry: Any = None, init_key=None,
               seq_lengths: Optional[jax.Array] = None, return_carry: Optional[bool] = None,
               time_major: Optional[bool] = None, reverse: Optional[bool] = None,
               keep_order: Optional[bool] = None):
    """``inputs``: ``(*batch, T, D)``; returns ``outputs`` ``(*batch, T, H)``, or
    ``(carry, outputs)`` with ``return_carry``. ``init_key`` is accepted for
    ``flax.linen.Bidirectional`` and unused (carries start at zero)."""
    pick = lambda v, d: d if v is None else v
    cell = with_dtypes(self.cell, self.dtype, self.param_dtype, "lib.nn.linen.RNN")
    params = cell_params(self, cell, inputs.shape[-1])
    carry, y = flax_unroll(cell, params, inputs, initial_carry=initial_carry,
                           seq_lengths=seq_lengths, time_major=pick(time_major, self.time_major),
                           reverse=pick(reverse, self.reverse),
                           keep_order=pick(keep_order, self.keep_order),
                           unroll=self.unroll, fast_grad=self.fast_grad)
    return (carry, y) if pick(return_carry, self.return_carry) else y


class Cell(nn.Module):
  """One step of an rnnlab cell with Flax's ``RNNCellBase`` interface.

  ``carry, y_BxH = Cell(cells.GRU(hidden=32))(carry, x_BxD)``. The parameters
  are those of :class:`RNN` over the same cell.
  """
  cell: _Cell
  dtype: Any = None
  param_dtype: Any = None

  @nn.compact
  def __call__(self, carry, inputs: jax.Array):
    cell = with_dtypes(self.cell, self.dtype, self.param_dtype, "lib.nn.linen.Cell")
    params = cell_params(self, cell, inputs.shape[-1])
    return cell.step(params, carry, cell.project(params, inputs))

  @nn.nowrap
  def initialize_carry(self, rng, input_shape: tuple[int, ...]):
    del rng
    return self.cell.zero_carry(tuple(input_shape[:-1]))

  @property
  def num_feature_axes(self) -> int:
    return 1
