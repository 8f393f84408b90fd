"""LSTM layers through cuDNN (``jax.experimental.rnn``), in rnnlab's parameter layout.

cuDNN runs a whole LSTM layer (both directions) in one call where ``lax.scan``
launches small kernels every step. :func:`lib.nn.stacks.stack` uses it with
``order='cudnn'``: plain :class:`lib.nn.cells.LSTM` layers in float32, one set of
weights (not under ``vmap`` of per-trial or per-example weights: the cuDNN call has
no batching rule), right padding given as ``seq_lengths``. Dropout between layers
stays rnnlab's (one cuDNN call per layer), so the numbers match the ``layers`` order.

The layouts: rnnlab keeps ``w_x`` (``D x 4H``), ``w_rec`` (``H x 4H``) and ``b``
with the gates (i, f, z, o); cuDNN (and PyTorch) keep ``W_ih`` (``4H x D``),
``W_hh`` (``4H x H``), ``b_ih`` and ``b_hh`` with the gates (i, f, g, o), the same
order: :func:`pack` transposes (``b_hh = 0``), :func:`unpack` transposes back and
adds the two biases. On CPU, ``reference=True`` runs JAX's pure reference of the
cuDNN op on the packed weights (the tests compare it with :func:`lib.nn.recurrence.unroll`).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
from jax.experimental import rnn

from lib.nn.cells import LSTM, Cell, Params


def unsupported(cells: Sequence[Cell], params: Sequence[Params]) -> str:
  """Why these layers cannot run through cuDNN ('' when they can)."""
  if jax.default_backend() != "gpu":
    return f"a GPU (this backend is {jax.default_backend()})"
  return unsupported_layers(cells, params)


def unsupported_layers(cells: Sequence[Cell], params: Sequence[Params]) -> str:
  """:func:`unsupported` without the backend check."""
  if any(type(c) is not LSTM for c in cells):
    return "plain LSTM layers (cell='lstm')"
  if any(c.dtype not in (None, jnp.float32) for c in cells):
    return "float32 (cuDNN's LSTM has no bfloat16 path here)"
  leaves = jax.tree.leaves(params)
  if any(p.dtype != jnp.float32 for p in leaves):
    return "float32 parameters"
  if any(p.ndim > 2 for p in leaves):
    return "one set of weights (not per-example weights)"
  return ""


def _directions(p: Params, bidirectional: bool) -> list[Params]:
  return [p["fwd"], p["bwd"]] if bidirectional else [p]


def pack(p: Params, bidirectional: bool = False) -> jax.Array:
  """One layer's parameters (``{'fwd', 'bwd'}`` when bidirectional) as cuDNN's flat weights."""
  dirs = _directions(p, bidirectional)
  mats = [m for d in dirs for m in (d["w_x"].T, d["w_rec"].T)]
  biases = []
  for d in dirs:
    b = d.get("b", jnp.zeros((d["w_rec"].shape[1],), d["w_rec"].dtype))
    biases += [b, jnp.zeros_like(b)]
  return jnp.concatenate([a.reshape(-1) for a in mats + biases])


def unpack(weights: jax.Array, input_size: int, hidden: int, bidirectional: bool = False
           ) -> Params:
  """cuDNN's flat weights of one layer as rnnlab's parameters (``b = b_ih + b_hh``)."""
  w_ih, w_hh, b_ih, b_hh = rnn.unpack_lstm_weights(weights, input_size, hidden, 1, bidirectional)
  dirs = [{"w_x": w_ih[k].T, "w_rec": w_hh[k].T, "b": b_ih[k] + b_hh[k]}
          for k in range(2 if bidirectional else 1)]
  return {"fwd": dirs[0], "bwd": dirs[1]} if bidirectional else dirs[0]


def lstm_layer(cell: Cell, p: Params, x_BxTxD: jax.Array, *,
               seq_lengths: Optional[jax.Array] = None, initial_carry: Any = None,
               bidirectional: bool = False, reference: bool = False
               ) -> tuple[Any, jax.Array]:
  """One LSTM layer through cuDNN: ``(carry, y_BxTxH)`` as
  :func:`lib.nn.recurrence.unroll` (``(fwd, bwd)`` carries and ``2H`` outputs when
  bidirectional); zero outputs past each sequence's length."""
  B, T, D = x_BxTxD.shape
  H, n = cell.hidden, 2 if bidirectional else 1
  lengths = jnp.full((B,), T, jnp.int32) if seq_lengths is None else seq_lengths.astype(jnp.int32)
  carries = ([None] * n if initial_carry is None
             else list(initial_carry) if bidirectional else [initial_carry])
  zero = jnp.zeros((B, H), jnp.float32)
  h0 = jnp.stack([zero if c is None else c[0] for c in carries])
  c0 = jnp.stack([zero if c is None else c[1] for c in carries])
  weights = pack(p, bidirectional)
  x = x_BxTxD.astype(jnp.float32)
  if reference:
    y, h_n, c_n = rnn.lstm_ref(x, h0, c0, *rnn.unpack_lstm_weights(weights, D, H, 1, bidirectional),
                               lengths, D, H, 1, 0.0, bidirectional)
  else:
    y, h_n, c_n = rnn.lstm(x, h0, c0, weights, lengths, D, H, 1, 0.0, bidirectional)
  y = jnp.where((jnp.arange(T)[None, :] < lengths[:, None])[..., None], y, 0.0)
  finals = [(h_n[k], c_n[k]) for k in range(n)]
  return (tuple(finals) if bidirectional else finals[0]), y
