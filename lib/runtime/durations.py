"""Durations: the one rule that turns epochs and examples into steps.

Every duration in a config is written in one unit, as a field named
``<name>_steps``, ``<name>_epochs`` or ``<name>_examples``; the other two are
``None``. The durations are::

  trainer.num               the run length (``trainer.num_epochs=10``)
  trainer.log_every         one train record (the window's mean) per this long
  trainer.eval_every        evaluate this often (0: only at the end)
  trainer.checkpoint_every  checkpoint this often (0: only at the end)
  optimizer.warmup          linear warm-up
  optimizer.decay_start     step schedule: when the first decay happens
  optimizer.decay_every     step schedule: the period of the decays
  optimizer.plateau_every   reduce on plateau: the window the loss is averaged over

Epochs may be fractional (``eval_every_epochs=0.5``). A command-line flag, a
variant or a sweep value that sets a duration replaces it in whatever unit the
file wrote it (:func:`override`). An experiment's ``build`` calls
:func:`resolve` once it knows its steps per epoch and examples per step; the
resolved config has every duration in ``_steps`` (the other units ``None``)
and is what the run saves.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Optional

import ml_collections
from ml_collections import config_dict

from lib.errors import ConfigError

UNITS = ("steps", "epochs", "examples")
_TYPES = {"steps": int, "epochs": float, "examples": int}
DURATIONS = {"trainer": ("num", "log_every", "eval_every", "checkpoint_every"),
             "optimizer": ("warmup", "decay_start", "decay_every", "plateau_every")}
_POSITIVE = ("num", "log_every", "decay_every", "plateau_every")  # the others: 0 = none


def fields(defaults: Mapping[str, tuple[str, Any]], overrides: Mapping[str, Any]) -> dict:
  """Config fields for durations ``{name: (unit, value)}``, typed placeholders.

  An override in any unit (``num_epochs=10``) replaces the default of its duration.
  """
  out = {}
  for name, (unit, value) in defaults.items():
    given = [u for u in UNITS if f"{name}_{u}" in overrides]
    chosen = {u: overrides[f"{name}_{u}"] for u in given} if given else {unit: value}
    for u in UNITS:
      out[f"{name}_{u}"] = config_dict.placeholder(_TYPES[u])
      if u in chosen:
        out[f"{name}_{u}"].set(chosen[u])
  return out


def set_fields(c: ml_collections.ConfigDict, overrides: Mapping[str, Any], section: str) -> None:
  """``default_config(**overrides)``'s other fields: an unknown key is an error listing
  the valid ones; durations were taken by :func:`fields` already."""
  for key, value in overrides.items():
    if key not in c:
      raise KeyError(f"{section} has no field {key!r}; valid: {', '.join(sorted(c.keys()))}")
    if duration_of(c, key) is None:
      c[key] = value


def duration_of(config: ml_collections.ConfigDict, key: str) -> Optional[tuple[str, str]]:
  """``('trainer.num', 'epochs')`` when dotted ``key`` is one unit of a duration."""
  parent, _, leaf = key.rpartition(".")
  for unit in UNITS:
    if leaf.endswith("_" + unit):
      name = leaf[:-len(unit) - 1]
      section = config
      for part in filter(None, parent.split(".")):
        section = section.get(part) if isinstance(section, ml_collections.ConfigDict) else None
      if isinstance(section, ml_collections.ConfigDict) and all(
          f"{name}_{u}" in section for u in UNITS):
        return (f"{parent}.{name}" if parent else name), unit
  return None


def override(config: ml_collections.ConfigDict, key: str, value: Any) -> None:
  """Set dotted ``key`` in place; a duration's other units are cleared."""
  *path, leaf = key.split(".")
  section = config
  for part in path:
    section = section[part]
  found = duration_of(config, key)
  if found:
    name = found[0].rpartition(".")[2]
    for u in UNITS:
      section[f"{name}_{u}"] = None
  section[leaf] = value


def _steps(section, name: str, where: str, spe: int, examples_per_step: Optional[int]) -> int:
  given = {u: section[f"{name}_{u}"] for u in UNITS if section[f"{name}_{u}"] is not None}
  if len(given) > 1:
    both = " and ".join(f"{where}.{name}_{u}={v}" for u, v in given.items())
    raise ConfigError(f"{both} are both set: a duration is written in one unit "
                     f"(steps, epochs or examples).")
  if not given:
    if name in _POSITIVE:
      raise ConfigError(f"{where}.{name} is not set: give one of {where}.{name}_steps, "
                       f"{where}.{name}_epochs or {where}.{name}_examples.")
    return 0
  (unit, value), = given.items()
  if value < 0 or (name in _POSITIVE and value == 0):
    raise ConfigError(f"{where}.{name}_{unit}={value}: expected a positive number.")
  if unit == "steps":
    return int(value)
  if unit == "examples" and not examples_per_step:
    raise ConfigError(f"{where}.{name}_examples is set but this experiment does not count "
                     "examples per step; give steps or epochs.")
  steps = value * spe if unit == "epochs" else value / examples_per_step
  return max(1, math.ceil(steps - 1e-9)) if value else 0


def resolve(config: ml_collections.ConfigDict, steps_per_epoch: int, *,
            examples_per_step: Optional[int] = None,
            num_steps: Optional[int] = None) -> ml_collections.ConfigDict:
  """A locked copy of ``config`` with every duration in steps.

  Args:
    config: a config whose ``trainer`` (and ``optimizer``) hold the durations.
    steps_per_epoch: optimizer steps in one pass over the training data.
    examples_per_step: training examples in one step (the global batch size).
    num_steps: the run length where epochs differ in length (word2vec's
      subsampled pair stream); used when the length is given in epochs.
  """
  if steps_per_epoch < 1:
    raise ConfigError(f"An epoch has {steps_per_epoch} steps: the data set is smaller than "
                     "one batch.")
  c = ml_collections.ConfigDict(config.to_dict())
  for where, names in DURATIONS.items():
    section = c.get(where)
    if section is None:
      continue
    for name in names:
      if f"{name}_steps" not in section:
        continue
      by_epochs = section[f"{name}_epochs"] is not None
      steps = _steps(section, name, where, steps_per_epoch, examples_per_step)
      if name == "num" and by_epochs and num_steps is not None:
        steps = num_steps
      for u in UNITS:
        section[f"{name}_{u}"] = steps if u == "steps" else None
  c.lock()
  return c
