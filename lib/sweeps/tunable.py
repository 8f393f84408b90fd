"""Which config keys a vmapped sweep may vary, and how.

* **Tunable** keys keep every array shape: trials differing in them train in one
  program, one compilation for all. ``seed`` (keys), the optimizer's
  :data:`lib.train.optim.TUNABLE` floats (held in its ``inject_hyperparams``
  state) and what the experiment lists in its module's ``TUNABLE``: values its
  loss reads through :attr:`lib.train.task.Task.hparams` (traced per trial) or
  that only set the initial parameters (each trial's own ``init_params``).
* **Structural** keys change shapes or the program (hidden size, cell, batch
  size, optimizer name): the experiment lists them in ``STRUCTURAL``; a sweep
  over them splits into groups, one vmapped program per combination.
* Any other key is refused before anything runs, with both lists.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import ml_collections

from lib.errors import ConfigError
from lib.runtime import configs, durations
from lib.train import optim

COMMON_TUNABLE = ("seed",) + tuple(f"optimizer.{k}" for k in optim.TUNABLE)
COMMON_STRUCTURAL = tuple(f"optimizer.{k}" for k in optim.STRUCTURAL)


def keys(experiment) -> tuple[tuple[str, ...], tuple[str, ...]]:
  """``(tunable, structural)`` keys of an experiment module."""
  return (COMMON_TUNABLE + tuple(getattr(experiment, "TUNABLE", ())),
          COMMON_STRUCTURAL + tuple(getattr(experiment, "STRUCTURAL", ())))


def _base_name(key: str) -> str:
  """``optimizer.warmup_epochs`` -> ``optimizer.warmup`` (durations in any unit)."""
  for unit in durations.UNITS:
    if key.endswith(f"_{unit}"):
      return key[:-len(unit) - 1]
  return key


def varying(trials: Sequence[Mapping[str, Any]]) -> list[str]:
  """Keys whose value differs between trials (in trial order of first appearance)."""
  seen = dict.fromkeys(k for t in trials for k in t)
  return [k for k in seen if len({repr(t.get(k, "<unset>")) for t in trials}) > 1]


def check(experiment, trials: Sequence[Mapping[str, Any]], name: str = "") -> None:
  """Refuses a sweep that varies a key neither tunable nor structural (the config
  itself has already refused unknown keys)."""
  tunable, structural = keys(experiment)
  allowed = set(tunable) | set(structural)
  bad = [k for k in varying(trials) if _base_name(k) not in allowed and k not in allowed]
  if bad:
    raise ConfigError(
        f"{name or 'this experiment'}: the vmap backend cannot vary {', '.join(bad)}. "
        f"Tunable (one program): {', '.join(tunable)}. Structural (one program per value): "
        f"{', '.join(structural) or 'none'}. Any other key: --backend=local.")


def groups(experiment, trials: Sequence[Mapping[str, Any]]) -> list[list[int]]:
  """Trial indices split by their structural values, in order of first appearance."""
  structural = set(keys(experiment)[1])
  split = [k for k in varying(trials) if k in structural or _base_name(k) in structural]
  out: dict[tuple, list[int]] = {}
  for i, t in enumerate(trials):
    out.setdefault(tuple(repr(t.get(k)) for k in split), []).append(i)
  return list(out.values())


def hparams(config: ml_collections.ConfigDict, names: Sequence[str]) -> dict[str, float]:
  """``{key: float value}`` of ``names`` in ``config``: a task's ``hparams``."""
  return {k: float(configs.value(config, k)) for k in names}

