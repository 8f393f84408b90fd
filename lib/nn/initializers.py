"""Initializers named after the notes, in jax.nn.initializers' signature.

Each returns ``init(key, shape, dtype) -> array``. Kernels are laid out
``(fan_in, fan_out)``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from lib.errors import ConfigError

Initializer = jax.nn.initializers.Initializer


def uniform_symmetric(scale: float) -> Initializer:
  """U(-scale, scale); notes 003 draw both weights of the linear cell from U(-0.1, 0.1)."""

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, minval=-scale, maxval=scale)

  return init


def uniform_inv_sqrt_fan_in() -> Initializer:
  """U(-1/sqrt(n), 1/sqrt(n)) with n the fan-in: notes 001's U, V and W init."""

  def init(key, shape, dtype=jnp.float32):
    fan_in = shape[0] if len(shape) > 1 else shape[-1]
    bound = 1.0 / jnp.sqrt(jnp.asarray(fan_in, dtype))
    return jax.random.uniform(key, shape, dtype, minval=-bound, maxval=bound)

  return init


# Keras' defaults for recurrent layers (notes 002): glorot kernel, orthogonal
# recurrent kernel, zero bias.
glorot_uniform = jax.nn.initializers.glorot_uniform
orthogonal = jax.nn.initializers.orthogonal
zeros = jax.nn.initializers.zeros
normal = jax.nn.initializers.normal


def fan_in_normal(scale: float = 1.0) -> Initializer:
  """N(0, scale / fan_in): recurrentgemma's kernels (``variance_scaling``, ``'normal'``)."""
  return jax.nn.initializers.variance_scaling(scale, "fan_in", "normal")


_BY_NAME = {
    "inv_sqrt_fan_in": uniform_inv_sqrt_fan_in,
    "glorot_uniform": glorot_uniform,
    "orthogonal": orthogonal,
    "zeros": lambda: zeros,
    # Keras' 'random_normal' (stddev 0.05), which notes 002 pass to SimpleRNN/LSTM.
    "random_normal": lambda: normal(0.05),
    "fan_in_normal": fan_in_normal,
}


def get(name: str) -> Initializer:
  """Looks an initializer up by name; ``uniform:S`` gives U(-S, S)."""
  if name.startswith("uniform:"):
    return uniform_symmetric(float(name.split(":", 1)[1]))
  if name not in _BY_NAME:
    raise ConfigError(
        f"Unknown initializer {name!r}; expected one of {sorted(_BY_NAME)} or 'uniform:<scale>'.")
  return _BY_NAME[name]()
