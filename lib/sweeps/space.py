"""Sweep definitions: ``def sweep(add, name)`` next to an experiment's ``get_config``.

``add`` is a :class:`Sweep`. Each call adds one block of trials; the sweep is
the product of its blocks::

  def sweep(add, name=""):
    add.grid("optimizer.lr", [1e-3, 3e-3, 1e-2])              # 3 values ...
    add.zip({"seed": [1, 2], "data.seed": [1, 2]})            # x 2 paired values
    add.random(4, {"optimizer.adam.b1": uniform(0.8, 0.99)}, seed=0)  # x 4 draws

A trial is a dict of config overrides (dotted keys), applied to a locked
config with :func:`apply`, so a mistyped key is an error before anything runs.
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
import math
from typing import Any, Callable, Mapping, Sequence

import ml_collections
import numpy as np

from lib.runtime import configs, durations

Trial = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Distribution:
  """A random draw for :meth:`Sweep.random`."""
  kind: str                       # 'uniform' | 'log_uniform' | 'choice' | 'int'
  args: tuple

  def draw(self, rng: np.random.Generator):
    if self.kind == "uniform":
      return float(rng.uniform(*self.args))
    if self.kind == "log_uniform":
      lo, hi = self.args
      return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    if self.kind == "int":
      return int(rng.integers(self.args[0], self.args[1] + 1))
    choices = self.args[0]
    return choices[int(rng.integers(len(choices)))]


def uniform(low: float, high: float) -> Distribution:
  return Distribution("uniform", (low, high))


def log_uniform(low: float, high: float) -> Distribution:
  if not 0 < low < high:
    raise ValueError(f"log_uniform needs 0 < low < high, got {low}, {high}.")
  return Distribution("log_uniform", (low, high))


def integers(low: int, high: int) -> Distribution:
  """Uniform over ``low..high`` inclusive."""
  return Distribution("int", (low, high))


def choice(values: Sequence[Any]) -> Distribution:
  return Distribution("choice", (list(values),))


class Sweep:
  """Collects blocks of trials; :meth:`trials` is their product, in order."""

  def __init__(self):
    self._blocks: list[list[Trial]] = []

  def grid(self, key: str, values: Sequence[Any]) -> "Sweep":
    """One axis; successive calls multiply."""
    values = list(values)
    if not values:
      raise ValueError(f"grid({key!r}) has no values.")
    self._blocks.append([{key: v} for v in values])
    return self

  def zip(self, axes: Mapping[str, Sequence[Any]]) -> "Sweep":
    """Axes that move together (equal lengths): trial i takes value i of each."""
    lengths = {k: len(v) for k, v in axes.items()}
    if len(set(lengths.values())) != 1:
      raise ValueError(f"zip() axes differ in length: {lengths}")
    n = next(iter(lengths.values()))
    self._blocks.append([{k: list(v)[i] for k, v in axes.items()} for i in range(n)])
    return self

  def random(self, num: int, axes: Mapping[str, Distribution], seed: int = 0) -> "Sweep":
    """``num`` draws of every axis, seeded: the same sweep lists the same trials."""
    rng = np.random.default_rng([0x5EE9, seed])
    self._blocks.append([{k: d.draw(rng) for k, d in axes.items()} for _ in range(num)])
    return self

  def trials(self) -> list[Trial]:
    out = []
    for combo in itertools.product(*self._blocks):
      trial: Trial = {}
      for part in combo:
        clash = set(trial) & set(part)
        if clash:
          raise ValueError(f"Sweep sets {sorted(clash)} in two blocks.")
        trial.update(part)
      out.append(trial)
    return out if self._blocks else [{}]


def build(sweep_fn: Callable[..., None], name: str = "") -> list[Trial]:
  """The trials of a config module's ``sweep(add, name)`` (``name`` picks one of several)."""
  add = Sweep()
  sweep_fn(add, name)
  return add.trials()


def apply(config: ml_collections.ConfigDict, trial: Mapping[str, Any]) -> ml_collections.ConfigDict:
  """A copy of ``config`` with the trial's overrides; unknown keys raise ``KeyError``
  naming the key. A duration replaces the config's in whatever unit
  (:func:`lib.runtime.durations.override`); the copy stays locked, as the config
  files lock it."""
  c = copy.deepcopy(config)
  for key, value in trial.items():
    node, parts = c, key.split(".")
    for i, part in enumerate(parts[:-1]):
      if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
        raise KeyError(f"Sweep key {key!r}: the config has no section {'.'.join(parts[:i + 1])!r}.")
      node = node[part]
    if parts[-1] not in node:
      hint = configs.renamed(key)
      if hint:
        raise KeyError(f"Sweep key {key!r}: the config has no field {parts[-1]!r}{hint}")
      raise KeyError(f"Sweep key {key!r}: the config has no field {parts[-1]!r}; valid: "
                     f"{', '.join(sorted(node.keys()))}")
    if isinstance(node[parts[-1]], float) and isinstance(value, int) and not isinstance(value, bool):
      value = float(value)  # grid(lr, [1, 2]) on a float field; other mismatches raise
    durations.override(c, key, value)
  return c


def label(trial: Mapping[str, Any]) -> str:
  """``optimizer.lr=0.001,seed=2``: the trial's differences, for tables and plots."""
  return ",".join(f"{k}={_fmt(v)}" for k, v in trial.items()) or "(base config)"


def _fmt(v) -> str:
  return f"{v:.4g}" if isinstance(v, float) else str(v)
