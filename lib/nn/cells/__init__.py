"""Recurrent cells as pure functions of a parameter dict, and their registry.

``cells.make(name, hidden, **options)`` builds any registered cell by name
(``cells.names()``); every experiment's ``model.cell``, the Flax wrappers, the
variational encoders and the generated tests go through it. The contract and
the three families (dense, element-wise linear, matrix memory) are described in
:mod:`lib.nn.cells.base`; the cells themselves in :mod:`~lib.nn.cells.classic`
(Elman, LSTM, GRU), :mod:`~lib.nn.cells.linear` (the notes' linear cell, a plain
diagonal recurrence, LRU, minGRU, minLSTM, RG-LRU) and :mod:`~lib.nn.cells.mlstm`.
"""
from lib.nn.cells.base import (ALIASES, DTYPES, AdditiveCell, Carry, Cell, DenseCell, LinearCell,
                               Params, acc_dtype, choices, config_choices, fields, make, make_supported, names,
                               output_of, register)
from lib.nn.cells.classic import GRU, LSTM, Elman
from lib.nn.cells.linear import LRU, RGLRU, Diagonal, Linear, MinGRU, MinLSTM
from lib.nn.cells.mlstm import MLSTM

__all__ = ["ALIASES", "DTYPES", "AdditiveCell", "Carry", "Cell", "DenseCell", "Diagonal", "Elman", "GRU",
           "LRU", "LSTM", "Linear", "LinearCell", "MLSTM", "MinGRU", "MinLSTM", "Params", "RGLRU",
           "acc_dtype", "choices", "config_choices", "fields", "linear", "make", "make_supported", "names", "output_of",
           "register"]


def linear(hidden: int = 1, init: str = "uniform:0.1") -> Linear:
  """The linear cell of notes 003, both weights from ``init`` (the notes: U(-0.1, 0.1))."""
  return Linear(hidden=hidden, kernel_init=init, recurrent_init=init)
