"""Parameters and carries between rnnlab cells and ``flax.linen``'s cells.

rnnlab fuses each cell's gates into one input matrix ``w_x`` (D x G*H), one
recurrent matrix ``w_rec`` (H x G*H) and biases; Flax keeps one ``Dense`` per
gate and input (``ii``, ``hi``, ...). The gate orders agree (LSTM i, f, g/z,
o; GRU r, z, n), so a conversion is a concatenation or a split, exact in both
directions. ``flax.linen.OptimizedLSTMCell`` has ``LSTMCell``'s parameter
names, so the LSTM functions serve both. A Flax cell's parameters are
``variables['params']`` of the cell, or ``variables['params']['cell']`` of an
``nn.RNN``; for the NNX cells, ``nnx.state(cell, nnx.Param)`` holds the same
kernels (``if_`` for ``if``).

The cells must agree beyond parameters: Flax's defaults (sigmoid gates, tanh)
are rnnlab's, but Flax initializes differently (LeCun-normal kernels, no
forget-gate bias), which matters only for fresh parameters.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from lib.errors import ConfigError

_LSTM_GATES = ("i", "f", "g", "o")
_GRU_GATES = ("r", "z", "n")


def _split(a: jax.Array, parts: int) -> list[jax.Array]:
  return jnp.split(a, parts, axis=-1)


def _need(params: dict, names, cell: str) -> None:
  missing = [n for n in names if n not in params]
  if missing:
    raise ConfigError(f"Not the parameters of a Flax {cell}: missing {missing}; "
                      f"got {sorted(params)} (an nn.RNN keeps its cell's under 'cell').")


def lstm_from_flax(p: dict) -> dict[str, jax.Array]:
  """``flax.linen.LSTMCell`` / ``OptimizedLSTMCell`` params -> :class:`lib.nn.cells.LSTM`'s."""
  _need(p, [f"{s}{g}" for s in "ih" for g in _LSTM_GATES], "LSTMCell")
  return {"w_x": jnp.concatenate([p[f"i{g}"]["kernel"] for g in _LSTM_GATES], -1),
          "w_rec": jnp.concatenate([p[f"h{g}"]["kernel"] for g in _LSTM_GATES], -1),
          "b": jnp.concatenate([p[f"h{g}"]["bias"] for g in _LSTM_GATES], -1)}


def lstm_to_flax(p: dict) -> dict[str, dict[str, jax.Array]]:
  """:class:`lib.nn.cells.LSTM` params (with bias) -> ``flax.linen.LSTMCell``'s."""
  out = {}
  for g, wx, wh, b in zip(_LSTM_GATES, _split(p["w_x"], 4), _split(p["w_rec"], 4),
                          _split(_bias(p, "b", p["w_rec"]), 4)):
    out[f"i{g}"] = {"kernel": wx}
    out[f"h{g}"] = {"kernel": wh, "bias": b}
  return out


def gru_from_flax(p: dict) -> dict[str, jax.Array]:
  """``flax.linen.GRUCell`` params -> :class:`lib.nn.cells.GRU`'s (``b_rec`` zero
  on r and z, where Flax has no recurrent bias)."""
  _need(p, [f"{s}{g}" for s in "ih" for g in _GRU_GATES], "GRUCell")
  hn_bias = p["hn"]["bias"]
  return {"w_x": jnp.concatenate([p[f"i{g}"]["kernel"] for g in _GRU_GATES], -1),
          "w_rec": jnp.concatenate([p[f"h{g}"]["kernel"] for g in _GRU_GATES], -1),
          "b": jnp.concatenate([p[f"i{g}"]["bias"] for g in _GRU_GATES], -1),
          "b_rec": jnp.concatenate([jnp.zeros_like(hn_bias), jnp.zeros_like(hn_bias), hn_bias])}


def gru_to_flax(p: dict) -> dict[str, dict[str, jax.Array]]:
  """:class:`lib.nn.cells.GRU` params -> ``flax.linen.GRUCell``'s. The recurrent
  biases of r and z are folded into the input biases (only their sum acts)."""
  b_r, b_z, b_n = _split(_bias(p, "b", p["w_rec"]), 3)
  c_r, c_z, c_n = _split(_bias(p, "b_rec", p["w_rec"]), 3)
  wx, wh = _split(p["w_x"], 3), _split(p["w_rec"], 3)
  return {"ir": {"kernel": wx[0], "bias": b_r + c_r}, "iz": {"kernel": wx[1], "bias": b_z + c_z},
          "in": {"kernel": wx[2], "bias": b_n},
          "hr": {"kernel": wh[0]}, "hz": {"kernel": wh[1]}, "hn": {"kernel": wh[2], "bias": c_n}}


def elman_from_flax(p: dict) -> dict[str, jax.Array]:
  """``flax.linen.SimpleCell`` params -> :class:`lib.nn.cells.Elman`'s (tanh)."""
  _need(p, ["i", "h"], "SimpleCell")
  return {"w_x": p["i"]["kernel"], "w_rec": p["h"]["kernel"], "b": p["i"]["bias"]}


def elman_to_flax(p: dict) -> dict[str, dict[str, jax.Array]]:
  return {"i": {"kernel": p["w_x"], "bias": _bias(p, "b", p["w_rec"])},
          "h": {"kernel": p["w_rec"]}}


def _bias(p: dict, name: str, w_rec: jax.Array) -> jax.Array:
  return p[name] if name in p else jnp.zeros(w_rec.shape[-1], w_rec.dtype)


def lstm_carry_to_flax(carry):
  """rnnlab's LSTM carry ``(h, c)`` -> Flax's ``(c, h)``."""
  h, c = carry
  return (c, h)
