"""The opening and closing every experiment's ``get_config`` shares: one way to
write variants (a dict of dotted overrides per variant, applied to the base config)."""
from __future__ import annotations

import copy
from typing import Any, Mapping, Sequence

import ml_collections

from lib.errors import ConfigError
from lib.runtime import durations


def start(experiment: str, variant: str, variants: Sequence[str]) -> ml_collections.ConfigDict:
  """An open config naming its experiment and variant; an unknown variant is a
  clear error listing the valid ones."""
  if variant not in variants:
    raise ConfigError(f"Unknown {experiment} variant {variant!r}; expected one of {tuple(variants)}.")
  c = ml_collections.ConfigDict()
  c.experiment = experiment
  c.variant = variant
  return c


def finish(c: ml_collections.ConfigDict, variants: Mapping[str, Mapping[str, Any]],
           variant: str | None = None) -> ml_collections.ConfigDict:
  """Applies ``variants[variant or c.variant]`` to the base config ``c`` and locks it.

  A variant is a dict of dotted overrides (``{'model.cell': 'lstm', 'trainer.num_epochs': 10}``);
  a ConfigDict value replaces a whole section (``{'optimizer': optim.default_config(...)}``).
  Every key must already exist in the base config, so a variant cannot add a field;
  a duration replaces the base's in whatever unit (:func:`lib.runtime.durations.override`).
  """
  name = variant or c.variant
  for key, value in variants[name].items():
    *path, field = key.split(".")
    node = c
    for part in path:
      node = node[part]
    if field not in node:
      raise KeyError(f"Variant {name!r} sets {key!r}, which the base config does not have.")
    durations.override(c, key, copy.deepcopy(value))
  c.lock()
  return c


# Keys that were renamed, and their names now: a config or flag that uses an old name
# is refused with one line naming the new one (``renamed``).
RENAMED = {"model.kind": "model.cell", "model.encoder": "model.cell",
           # each optimizer's own arguments live in its section (lib.train.optim)
           "optimizer.momentum": "optimizer.sgd.momentum",
           "optimizer.nesterov": "optimizer.sgd.nesterov",
           "optimizer.decay": "optimizer.rmsprop.decay",
           "optimizer.b1": "optimizer.adam.b1 or optimizer.adamw.b1",
           "optimizer.b2": "optimizer.adam.b2 or optimizer.adamw.b2",
           "optimizer.eps": "optimizer.<name>.eps (rmsprop, adam, adamw, adagrad)",
           "optimizer.initial_accumulator": "optimizer.adagrad.initial_accumulator",
           **{f"optimizer.{k}": f"optimizer.rprop.{k}"
              for k in ("eta_minus", "eta_plus", "min_step", "max_step")}}


def renamed(key: str) -> str:
  """``' (model.kind is now model.cell: use model.cell)'`` when ``key`` (dotted,
  without ``config.``) is an old name, else ``''``."""
  old = key.removeprefix("config.")
  new = RENAMED.get(old)
  if not new:
    return ""
  return f" ({old} is now {new})" if " " in new else f" ({old} is now {new}: use {new})"


def value(config: ml_collections.ConfigDict, key: str):
  node = config
  for part in key.split("."):
    node = node[part]
  return node


def check(config: ml_collections.ConfigDict, *, positive: Sequence[str] = (),
          nonnegative: Sequence[str] = (), fractions: Sequence[str] = (),
          choices: Mapping[str, Sequence[Any]] | None = None) -> None:
  """Refuses a config whose values would make a run meaningless, before anything
  starts: :class:`ConfigError` naming the key, its value and what was expected.
  ``positive`` keys must be > 0, ``nonnegative`` ones >= 0, ``fractions`` in
  [0, 1); ``choices`` maps a key to the values it may take."""
  rules = [(k, lambda v: v > 0, "a positive number") for k in positive]
  rules += [(k, lambda v: v >= 0, "a number >= 0") for k in nonnegative]
  rules += [(k, lambda v: 0 <= v < 1, "a fraction in [0, 1)") for k in fractions]
  for key, ok, expected in rules:
    v = value(config, key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not ok(v):
      raise ConfigError(f"{key}={v!r}: expected {expected}.")
  for key, allowed in (choices or {}).items():
    v = value(config, key)
    if v not in allowed:
      raise ConfigError(f"{key}={v!r}: expected one of {tuple(allowed)}.")
