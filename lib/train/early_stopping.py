"""Early stopping on an evaluation metric, with the best state kept.

Set in the trainer config: ``early_stop_metric`` (an evaluator's metric name,
e.g. ``chrf`` or ``loss``), ``early_stop_mode`` (``max`` or ``min``),
``early_stop_patience`` (evaluations without an improvement of more than
``early_stop_min_delta`` before the run stops; 0 = off). The trainer saves the
state of every new best evaluation in ``<workdir>/best`` (one checkpoint;
``lib.train.state.restore_params(..., best=True)`` loads it) and records the
best step and value in ``summary.json`` under ``early_stop``.

The tracker's state is a function of the evaluation records, so a resumed run
rebuilds it from ``metrics.jsonl`` and stops where an uninterrupted one does.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Mapping, Optional

import ml_collections

from lib.errors import ConfigError

BEST_DIR = "best"


@dataclasses.dataclass
class EarlyStopping:
  metric: str
  mode: str = "max"
  patience: int = 5
  min_delta: float = 0.0
  best_value: Optional[float] = None
  best_step: Optional[int] = None
  since_best: int = 0   # evaluations since the best one

  def __post_init__(self):
    if self.mode not in ("max", "min"):
      raise ConfigError(f"trainer.early_stop_mode must be 'max' or 'min', got {self.mode!r}.")
    if self.patience < 1:
      raise ConfigError(f"trainer.early_stop_patience must be at least 1, got {self.patience}.")

  def _better(self, value: float) -> bool:
    if self.best_value is None:
      return math.isfinite(value)
    gain = value - self.best_value if self.mode == "max" else self.best_value - value
    return gain > self.min_delta

  def update(self, step: int, values: Mapping[str, float]) -> bool:
    """Takes one evaluation; returns whether it is the new best."""
    if self.metric not in values:
      raise ConfigError(f"trainer.early_stop_metric={self.metric!r} is not an evaluation "
                        f"metric; the evaluators give {sorted(values)}.")
    value = float(values[self.metric])
    if self._better(value):
      self.best_value, self.best_step, self.since_best = value, step, 0
      return True
    self.since_best += 1
    return False

  def replay(self, eval_records: Iterable[Mapping[str, float]]) -> None:
    """Rebuilds the state from a run's kept evaluation records (a resume)."""
    for r in eval_records:
      self.update(int(r["step"]), r)

  @property
  def done(self) -> bool:
    return self.since_best >= self.patience

  def summary(self, stopped_at: Optional[int]) -> dict:
    return {"metric": self.metric, "mode": self.mode, "patience": self.patience,
            "best_step": self.best_step, "best_value": self.best_value,
            "stopped_at": stopped_at}


def from_config(tc: ml_collections.ConfigDict) -> Optional[EarlyStopping]:
  """The tracker a trainer config asks for, or None (``early_stop_patience`` 0)."""
  patience = tc.get("early_stop_patience", 0)
  if not patience:
    return None
  if not tc.get("early_stop_metric"):
    raise ConfigError("trainer.early_stop_patience is set but trainer.early_stop_metric is "
                      "empty: name the evaluation metric to watch (e.g. 'loss').")
  if not tc.eval_every_steps:
    raise ConfigError("early stopping needs periodic evaluations: set trainer.eval_every_steps "
                      "(or _epochs) above 0.")
  return EarlyStopping(tc.early_stop_metric, tc.get("early_stop_mode", "max"), int(patience),
                       float(tc.get("early_stop_min_delta", 0.0)))
