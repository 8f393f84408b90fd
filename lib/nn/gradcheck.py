"""Gradient check: central finite differences against ``jax.grad``, per parameter.

Notes 001 check BPTT by perturbing one weight at a time by ``h = 1e-3`` and
comparing ``(f(w+h) - f(w-h)) / 2h`` with the analytic gradient, failing above a
relative error of 0.01. Here the perturbations of one parameter are evaluated
together under ``vmap`` (one compiled call per parameter, not one per element),
and large parameters are checked on a random subset of elements.

Run it in float64 for tight thresholds: ``with jax.enable_x64(True): ...`` and
float64 parameters.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np


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
  leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
  grad_leaves = jax.tree.leaves(grads)
  checks = []
  for i, ((path, leaf), g) in enumerate(zip(leaves, grad_leaves)):
    flat = jnp.ravel(leaf)
    n = flat.size
    if max_elements is not None and n > max_elements:
      idx = jax.random.choice(jax.random.fold_in(key, i), n, (max_elements,), replace=False)
    else:
      idx = jnp.arange(n)

    def f_at(j, sign, i=i, flat=flat, leaf=leaf):
      perturbed = flat.at[j].add(sign * eps).reshape(leaf.shape)
      new_leaves = [perturbed if k == i else l for k, (_, l) in enumerate(leaves)]
      return loss_fn(jax.tree.unflatten(treedef, new_leaves))

    plus = jax.jit(jax.vmap(lambda j: f_at(j, 1.0)))(idx)
    minus = jax.jit(jax.vmap(lambda j: f_at(j, -1.0)))(idx)
    numeric = np.asarray((plus - minus) / (2 * eps), np.float64)
    analytic = np.asarray(jnp.ravel(g)[idx], np.float64)
    rel = np.abs(analytic - numeric) / np.maximum(np.abs(analytic) + np.abs(numeric), abs_floor)
    w = int(np.argmax(rel))
    checks.append(ParamCheck(
        name=jax.tree_util.keystr(path), checked=int(idx.size), max_rel_error=float(rel[w]),
        worst_index=tuple(int(v) for v in np.unravel_index(int(idx[w]), leaf.shape)),
        analytic=float(analytic[w]), numeric=float(numeric[w])))
  return GradCheckReport(checks, threshold)
