"""rnnlab's cells and fast unroll as Flax NNX modules.

The NNX twins of :mod:`lib.nn.linen`: ``RNN(cell, in_features, rngs=...)``
with the call signature of ``flax.nnx.RNN`` and ``Cell`` with the
``RNNCellBase`` step interface; ``flax.nnx.Bidirectional`` takes two ``RNN``
modules. Each holds the cell's parameters as ``nnx.Param`` attributes of the
same names (``w_x``, ``w_rec``, ``b``, ...); :meth:`RNN.cell_params` gives the
plain dict the functions of :mod:`lib.nn.recurrence` take::

    rnn = nnx.RNN(cells.LSTM(hidden=64), in_features=32, rngs=nnx.Rngs(0))
    y_BxTxH = rnn(x_BxTx32, seq_lengths=lengths_B)

As in :mod:`lib.nn.linen`, outputs at padded steps are zero and carries keep
rnnlab's layout (LSTM ``(h, c)``).
"""
from __future__ import annotations

from typing import Any, Optional

import jax
from flax import nnx

from lib.nn.cells import Cell as _Cell
from lib.nn.linen import check_cell, flax_unroll, with_dtypes


class _CellParams(nnx.Module):
  """The parameters of an rnnlab cell as ``nnx.Param`` attributes."""

  def __init__(self, cell: _Cell, in_features: int, rngs: nnx.Rngs):
    check_cell(cell, "lib.nn.nnx")
    self.cell = cell
    params = cell.init(rngs.params(), in_features)
    self.param_names = tuple(params)
    for name, value in params.items():
      setattr(self, name, nnx.Param(value))

  def cell_params(self) -> dict[str, jax.Array]:
    """The plain parameter dict of :mod:`lib.nn.cells`."""
    return {name: getattr(self, name)[...] for name in self.param_names}

  def load_cell_params(self, params: dict[str, jax.Array]) -> None:
    """Sets the parameters from a plain dict (same names and shapes)."""
    for name in self.param_names:
      getattr(self, name)[...] = params[name]


class RNN(_CellParams):
  """An rnnlab cell unrolled over time, called as ``flax.nnx.RNN``.

  Args:
    cell: a cell of :mod:`lib.nn.cells`.
    in_features: the input size ``D``.
    rngs: initializes the parameters (``rngs.params()``).
    return_carry, time_major, reverse, keep_order: defaults of the call's
      arguments of the same names.
    unroll, fast_grad: passed to :func:`lib.nn.recurrence.unroll`.
    dtype, param_dtype: the cell's compute and parameter types, when given.
  """

  def __init__(self, cell: _Cell, in_features: int, *, rngs: nnx.Rngs,
               return_carry: bool = False, time_major: bool = False, reverse: bool = False,
               keep_order: bool = False, unroll: Optional[int] = None, fast_grad: bool = True,
               dtype: Any = None, param_dtype: Any = None):
    super().__init__(with_dtypes(cell, dtype, param_dtype, "lib.nn.nnx.RNN"), in_features, rngs)
    self.return_carry, self.time_major = return_carry, time_major
    self.reverse, self.keep_order = reverse, keep_order
    self.unroll, self.fast_grad = unroll, fast_grad

  def __call__(self, inputs: jax.Array, *, initial_carry: Any = None,
               seq_lengths: Optional[jax.Array] = None, return_carry: Optional[bool] = None,
               time_major: Optional[bool] = None, reverse: Optional[bool] = None,
               keep_order: Optional[bool] = None, rngs=None):
    """``inputs``: ``(*batch, T, D)``; returns ``outputs`` ``(*batch, T, H)``, or
    ``(carry, outputs)`` with ``return_carry``. ``rngs`` is accepted for
    ``flax.nnx.Bidirectional`` and unused."""
    pick = lambda v, d: d if v is None else v
    carry, y = flax_unroll(self.cell, self.cell_params(), inputs, initial_carry=initial_carry,
                           seq_lengths=seq_lengths, time_major=pick(time_major, self.time_major),
                           reverse=pick(reverse, self.reverse),
                           keep_order=pick(keep_order, self.keep_order),
                           unroll=self.unroll, fast_grad=self.fast_grad)
    return (carry, y) if pick(return_carry, self.return_carry) else y


class Cell(_CellParams):
  """One step of an rnnlab cell: ``carry, y_BxH = Cell(cell, D, rngs=...)(carry, x_BxD)``."""

  def __init__(self, cell: _Cell, in_features: int, *, rngs: nnx.Rngs, dtype: Any = None,
               param_dtype: Any = None):
    super().__init__(with_dtypes(cell, dtype, param_dtype, "lib.nn.nnx.Cell"), in_features, rngs)

  def __call__(self, carry, inputs: jax.Array):
    params = self.cell_params()
    return self.cell.step(params, carry, self.cell.project(params, inputs))

  def initialize_carry(self, input_shape: tuple[int, ...], rngs=None):
    del rngs
    return self.cell.zero_carry(tuple(input_shape[:-1]))
