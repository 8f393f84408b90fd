"""Recurrent cells as pure functions of a parameter dict.

Every cell splits its step in two so that unrolling is fast:

* ``project(params, x_...xD)``: the input part ``x @ w_x + b`` for *all* time
  steps in one matrix product, hoisted out of the scan (notes 000: "XW is
  already multiplied, for speed");
* ``step(params, carry, xp_t) -> (carry, y_t)``: the recurrent part, the only
  work left inside ``lax.scan``.

Parameters use the names of notes 003: ``w_x`` (D x G*H), ``w_rec`` (H x G*H)
and ``b`` (G*H), with G the number of gate blocks (1 Elman, 4 LSTM, 3 GRU).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from lib.data.errors import ConfigError
from lib.nn import initializers

Params = dict[str, jax.Array]
Carry = Any

_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "identity": lambda x: x,
}


@dataclasses.dataclass(frozen=True)
class Cell:
  """What every cell is: parameters ``w_x``, ``w_rec`` (and ``b``) for ``gates``
  blocks of ``hidden`` units, the input product hoisted out of the scan, and an
  element-wise ``combine``. Subclasses set ``gates``, ``additive`` and ``combine``.
  """
  hidden: int
  use_bias: bool = True
  kernel_init: str = "inv_sqrt_fan_in"
  recurrent_init: str = "inv_sqrt_fan_in"
  gates = 1
  additive = True  # combine reads xp_t and hw_t only through their sum (lib.nn.recurrence uses it)

  def init(self, key: jax.Array, in_dim: int, dtype=jnp.float32) -> Params:
    k1, k2 = jax.random.split(key)
    g = self.gates * self.hidden
    params = {
        "w_x": initializers.get(self.kernel_init)(k1, (in_dim, g), dtype),
        "w_rec": initializers.get(self.recurrent_init)(k2, (self.hidden, g), dtype),
    }
    if self.use_bias:
      params["b"] = jnp.zeros((g,), dtype)
    return params

  def zero_carry(self, batch_shape: tuple[int, ...], dtype=jnp.float32) -> Carry:
    return jnp.zeros((*batch_shape, self.hidden), dtype)

  def output(self, carry: Carry) -> jax.Array:
    """The hidden vector a carry exposes (``h`` for LSTM)."""
    return carry

  def project(self, params: Params, x_xD: jax.Array) -> jax.Array:
    xp = x_xD @ params["w_x"]
    return xp + params["b"] if "b" in params else xp

  def step(self, params: Params, carry: Carry, xp_t: jax.Array):
    """One time step: ``combine`` with the recurrent product ``h_{t-1} @ w_rec``."""
    return self.combine(params, carry, xp_t, self.output(carry) @ params["w_rec"])

  def combine(self, params: Params, carry: Carry, xp_t: jax.Array, hw_t: jax.Array):
    """The step's element-wise part, given the input and recurrent products.

    Splitting it out lets :func:`lib.nn.recurrence.unroll` compute the gradient
    of ``w_rec`` as one matrix product over all steps instead of one per step.
    Only ``extra_params`` may be read from ``params`` here.
    """
    raise NotImplementedError

  def extra_params(self, params: Params) -> Params:
    """Parameters ``combine`` reads (beyond ``w_x``, ``w_rec``, ``b``)."""
    return {}


@dataclasses.dataclass(frozen=True)
class Elman(Cell):
  """``s_t = act(x_t w_x + s_{t-1} w_rec + b)``: notes 000/001 with tanh.

  With ``activation='identity'`` and no bias this is the linear cell of
  notes 003 (see :func:`linear`).
  """
  activation: str = "tanh"

  def combine(self, params: Params, carry: Carry, xp_t: jax.Array, hw_t: jax.Array):
    h = _ACTIVATIONS[self.activation](xp_t + hw_t)
    return h, h


def linear(hidden: int = 1, init: str = "uniform:0.1") -> Elman:
  """The linear cell of notes 003: ``s_t = x_t*w_x + s_{t-1}*w_rec``, both weights
  from U(-0.1, 0.1) as the notes draw them."""
  return Elman(hidden=hidden, activation="identity", use_bias=False,
               kernel_init=init, recurrent_init=init)


@dataclasses.dataclass(frozen=True)
class LSTM(Cell):
  """LSTM with the gate blocks in the order notes 002 explain: (i, f, z, o).

  ``i, f, o = sigmoid(.)``, ``z = tanh(.)``, ``c_t = f*c_{t-1} + i*z``,
  ``h_t = o*tanh(c_t)``. Defaults follow Keras: glorot kernel, orthogonal
  recurrent kernel, zero bias except a forget-gate bias of 1.
  """
  kernel_init: str = "glorot_uniform"
  recurrent_init: str = "orthogonal"
  forget_bias: float = 1.0
  gates = 4

  def init(self, key, in_dim, dtype=jnp.float32):
    params = super().init(key, in_dim, dtype)
    if self.use_bias:
      params["b"] = params["b"].at[self.hidden:2 * self.hidden].set(self.forget_bias)
    return params

  def zero_carry(self, batch_shape, dtype=jnp.float32):
    shape = (*batch_shape, self.hidden)
    return (jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))  # (h, c)

  def output(self, carry):
    return carry[0]

  def combine(self, params, carry, xp_t, hw_t):
    _, c = carry
    # All four gates through one tanh over the whole (..., 4H) block, with
    # sigmoid(x) = (1 + tanh(x / 2)) / 2: XLA:CPU vectorizes a transcendental
    # over the contiguous block but not over its four slices, and the scan of
    # 20 steps at batch 20, hidden 200 runs about 2x faster this way.
    t = jnp.tanh((xp_t + hw_t) * self._gate_scale(xp_t.dtype))
    ti, tf, z, to = jnp.split(t, 4, axis=-1)
    c = (0.5 + 0.5 * tf) * c + (0.5 + 0.5 * ti) * z
    h = (0.5 + 0.5 * to) * jnp.tanh(c)
    return (h, c), h

  def _gate_scale(self, dtype):
    """1/2 on the sigmoid gates (i, f, o), 1 on the candidate z."""
    block = jnp.arange(4 * self.hidden) // self.hidden
    return jnp.where(block == 2, 1.0, 0.5).astype(dtype)


@dataclasses.dataclass(frozen=True)
class GRU(Cell):
  """GRU with gate blocks (r, z, n) and the reset gate applied after the
  recurrent product (PyTorch, and Keras' ``reset_after=True``):

  ``r = σ(x_r + h U_r + c_r)``, ``z = σ(x_z + h U_z + c_z)``,
  ``n = tanh(x_n + r * (h U_n + c_n))``, ``h' = (1 - z) * n + z * h``.
  """
  kernel_init: str = "glorot_uniform"
  recurrent_init: str = "orthogonal"
  gates = 3
  additive = False  # the reset gate scales the recurrent part of n

  def init(self, key, in_dim, dtype=jnp.float32):
    params = super().init(key, in_dim, dtype)
    if self.use_bias:
      params["b_rec"] = jnp.zeros((3 * self.hidden,), dtype)
    return params

  def extra_params(self, params):
    return {"b_rec": params["b_rec"]} if "b_rec" in params else {}

  def combine(self, params, carry, xp_t, hw_t):
    hu = hw_t + params["b_rec"] if "b_rec" in params else hw_t
    x_r, x_z, x_n = jnp.split(xp_t, 3, axis=-1)
    h_r, h_z, h_n = jnp.split(hu, 3, axis=-1)
    r = jax.nn.sigmoid(x_r + h_r)
    z = jax.nn.sigmoid(x_z + h_z)
    n = jnp.tanh(x_n + r * h_n)
    h = (1.0 - z) * n + z * carry
    return h, h


def make(name: str, hidden: int, **kwargs) -> Cell:
  """Builds a cell by name: ``linear``, ``simple`` (tanh Elman), ``lstm``, ``gru``."""
  if name == "linear":
    return linear(hidden, **kwargs)
  builders = {"simple": Elman, "elman": Elman, "lstm": LSTM, "gru": GRU}
  if name not in builders:
    raise ConfigError(f"Unknown cell {name!r}; expected one of "
                     f"{['linear', *builders]}.")
  return builders[name](hidden=hidden, **kwargs)
