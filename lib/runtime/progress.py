"""A progress line with rate and ETA that reads well in a terminal and in logs."""
from __future__ import annotations

import time
from typing import Mapping, Optional


def _hms(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h}:{m:02d}:{s:02d}"


class Progress:
  """Rate is measured from the second report on, so compile time does not skew the ETA."""

  def __init__(self, total_steps: int, start_step: int = 0, unit: str = "steps",
               per_step: float = 1.0):
    self.total = total_steps
    self.unit = unit
    self.per_step = per_step  # units per step (e.g. words), for the rate
    self._t0 = time.perf_counter()
    self._start = start_step
    self._mark: Optional[tuple[float, int]] = None

  def line(self, step: int, metrics: Optional[Mapping[str, float]] = None) -> str:
    now = time.perf_counter()
    if self._mark is None or step <= self._mark[1]:
      self._mark = (now, step)
      rate = (step - self._start) / max(now - self._t0, 1e-9)
    else:
      rate = (step - self._mark[1]) / max(now - self._mark[0], 1e-9)
    eta = (self.total - step) / rate if rate > 0 else float("inf")
    pct = 100.0 * step / max(self.total, 1)
    parts = [f"step {step}/{self.total} ({pct:5.1f}%)", f"{rate * self.per_step:,.1f} {self.unit}/s",
             f"elapsed {_hms(now - self._t0)}", f"ETA {_hms(eta) if eta != float('inf') else '?'}"]
    if metrics:
      parts.append(" ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
    return " | ".join(parts)
