"""Gradient check: central finite differences against ``jax.grad``, per parameter.

Notes 001 check BPTT by perturbing one weight at a time by ``h = 1e-3`` and
comparing ``(f(w+h) - f(w-h)) / 2h`` with the analytic gradient, failing above a
relative error of 0.01. Here every perturbation of every parameter is evaluated
in one compiled program (a ``lax.map`` over the flattened parameters, vmapped in
batches), and large parameters are checked on a random subset of elements.

Run it in float64 for tight thresholds: ``with jax.enable_x64(True): ...`` and
float64 parameters.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree


@dataclasses.dataclass
class ParamCheck:
  name: str
  checked: int          # elements compared
  max_rel_error: float
  worst_index: tuple
  analytic: float       # at the worst index
  numeric: float


@dataclasses.dataclass
class GradCheckReport:
  params: list[ParamCheck]
  threshold: float

  @property
  def max_rel_error(self) -> float:
    return max((p.max_rel_error for p in self.params), default=0.0)

  @property
  def ok(self) -> bool:
    return self.max_rel_error <= self.threshold

  def __str__(self) -> str:
    rows = [f"{p.name}: {p.checked} elements, max rel error {p.max_rel_error:.2e} at "
            f"{p.worst_index} (grad {p.analytic:.6g} vs numeric {p.numeric:.6g})"
            for p in self.params]
    return "\n".join(rows + [f"{'PASSED' if self.ok else 'FAILED'} (threshold {self.threshold:g})"])


def _central_differences(loss_fn, flat, unravel, where, eps: float,
                         batch_size: int = 256) -> np.ndarray:
  """``(f(w + h e_j) - f(w - h e_j)) / 2h`` for every flat index ``j`` in ``where``:
  one compiled ``lax.map`` over the perturbations, ``batch_size`` of them vmapped at a time."""
  js = jnp.asarray(np.concatenate([where, where]))
  signs = jnp.concatenate([jnp.ones(where.size), -jnp.ones(where.size)]).astype(flat.dtype)

  def f(a):
    j, sign = a
    return loss_fn(unravel(flat.at[j].add(sign * eps)))

  values = jax.jit(lambda js, signs: jax.lax.map(f, (js, signs), batch_size=batch_size))(js, signs)
  values = np.asarray(values, np.float64)
  return (values[:where.size] - values[where.size:]) / (2 * eps)


def check_grads(loss_fn: Callable[[Any], jax.Array], params: Any, *, eps: float = 1e-3,
                threshold: float = 1e-2, max_elements: Optional[int] = 64,
                key: Optional[jax.Array] = None, abs_floor: float = 1e-8) -> GradCheckReport:
  """Compares ``jax.grad(loss_fn)(params)`` with central differences.

  Args:
    loss_fn: ``params -> scalar``; close over data and fixed PRNG keys.
    params: any pytree of float arrays.
    eps: the perturbation ``h``.
    threshold: largest relative error ``|a - n| / max(|a| + |n|, abs_floor)`` allowed.
    max_elements: per parameter, check at most this many random elements
      (``None``: all of them).
    key: PRNG key choosing those elements.

  Returns:
    A :class:`GradCheckReport`; ``report.ok`` says whether every element passed.
  """
  key = jax.random.key(0) if key is None else key
  grads = jax.grad(loss_fn)(params)
  leaves = jax.tree_util.tree_flatten_with_path(params)[0]
  flat, unravel = ravel_pytree(params)
  picks, offset = [], 0
  for i, (_, leaf) in enumerate(leaves):
    n = int(np.size(leaf))
    if max_elements is not None and n > max_elements:
      idx = np.asarray(jax.random.choice(jax.random.fold_in(key, i), n, (max_elements,),
                                         replace=False))
    else:
      idx = np.arange(n)
    picks.append((offset, idx))
    offset += n
  where = np.concatenate([o + idx for o, idx in picks])
  numeric_all = _central_differences(loss_fn, flat, unravel, where, eps)
  analytic_all = np.asarray(ravel_pytree(grads)[0], np.float64)[where]
  checks, start = [], 0
  for (path, leaf), (_, idx) in zip(leaves, picks):
    numeric = numeric_all[start:start + idx.size]
    analytic = analytic_all[start:start + idx.size]
    start += idx.size
    rel = np.abs(analytic - numeric) / np.maximum(np.abs(analytic) + np.abs(numeric), abs_floor)
    w = int(np.argmax(rel))
    checks.append(ParamCheck(
        name=jax.tree_util.keystr(path), checked=int(idx.size), max_rel_error=float(rel[w]),
        worst_index=tuple(int(v) for v in np.unravel_index(int(idx[w]), np.shape(leaf))),
        analytic=float(analytic[w]), numeric=float(numeric[w])))
  return GradCheckReport(checks, threshold)
