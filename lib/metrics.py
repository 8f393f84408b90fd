"""Metrics as (sum, count) pairs, so that averages divide by real counts.

A loss function returns ``{'name': Average(total, count), ...}``; the trainer
adds these up over steps on the device and divides only when it writes, so a
window's mean is weighted by real tokens/examples, never by padded length.
"""
from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Average(NamedTuple):
  total: Any
  count: Any

  @classmethod
  def of(cls, total, count=1.0) -> "Average":
    return cls(jnp.asarray(total, jnp.float32), jnp.asarray(count, jnp.float32))

  def compute(self):
    return self.total / self.count


def _is_avg(x) -> bool:
  return isinstance(x, Average)


def as_averages(metrics: Mapping[str, Any]) -> dict[str, Average]:
  """Plain scalars become ``Average(x, 1)``: their window value is a mean over steps."""
  return {k: v if _is_avg(v) else Average.of(v) for k, v in metrics.items()}


@jax.jit  # one dispatch per step, not one per metric
def merge(a: Mapping[str, Average], b: Mapping[str, Average]) -> dict[str, Average]:
  return jax.tree.map(jnp.add, dict(a), dict(b))


def to_floats(metrics: Mapping[str, Any]) -> dict[str, float]:
  """Host-side values: ``Average`` divided out, arrays to Python floats."""
  metrics = jax.device_get(dict(metrics))
  out = {}
  for k, v in metrics.items():
    val = (np.asarray(v.total) / np.asarray(v.count)) if _is_avg(v) else np.asarray(v)
    out[k] = float(val)
  return out
