"""Per-step metrics of a trial axis turned into the log records every run writes: a
record every ``log_every`` steps and at the last step, each the window's mean of
metric sums over counts."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from lib.runtime import writers


def chunk_ends(num_steps: int, log_every: int, flush_every: int, eval_every: int,
               max_chunk: int, extra: Sequence[int] = ()) -> list[int]:
  """Where each dispatched chunk of steps ends: at every evaluation, every
  ``log_every * flush_every`` steps (capped at ``max_chunk``), at ``extra`` (the
  checkpoints) and at the end."""
  ends = {num_steps, *extra}
  if eval_every:
    ends.update(range(eval_every, num_steps, eval_every))
  period = max(1, min(max_chunk, log_every * flush_every))
  ends.update(range(period, num_steps, period))
  return sorted(ends)


class Records:
  """Per-step metrics of every trial -> log records (window means): a record every
  ``log_every`` steps and at ``num_steps``, whatever the cuts between calls."""

  def __init__(self, log_every: int, num_steps: int):
    self.log_every, self.num_steps = log_every, num_steps
    self._partial = None  # (total, count) of the open window: (trials, metrics) each
    self.names: list[str] = []

  def add(self, first_step: int, metrics: dict) -> tuple[np.ndarray, list[str], np.ndarray]:
    """``metrics``: name -> ``Average`` of (K, trials) arrays for steps ``first_step + 1 ..``.
    Returns ``(steps_R, names, values_RxNxM)`` of the records that close here."""
    names = self.names = list(metrics)
    total = np.stack([np.asarray(metrics[k].total, np.float64) for k in names], -1)
    count = np.stack([np.asarray(metrics[k].count, np.float64) for k in names], -1)
    steps = first_step + 1 + np.arange(total.shape[0])
    ct, cc = np.cumsum(total, 0), np.cumsum(count, 0)
    if self._partial is not None:
      ct, cc = ct + self._partial[0], cc + self._partial[1]
    ends = np.nonzero((steps % self.log_every == 0) | (steps == self.num_steps))[0]
    if ends.size:
      t, c = ct[ends], cc[ends]
      t[1:] -= ct[ends[:-1]]
      c[1:] -= cc[ends[:-1]]
      self._partial = (ct[-1] - ct[ends[-1]], cc[-1] - cc[ends[-1]])
      return steps[ends], names, t / c
    self._partial = (ct[-1], cc[-1])
    return steps[:0], names, np.zeros((0, *total.shape[1:]))

  def open_windows(self, trials: Sequence[int]) -> Optional[np.ndarray]:
    """The means so far of these trials' (positions) open windows, ``NxM``; ``None``
    when no step is in them."""
    if self._partial is None or not np.all(self._partial[1][np.asarray(trials, dtype=np.int64)] > 0):
      return None
    return self._partial[0][np.asarray(trials, dtype=np.int64)] / self._partial[1][np.asarray(trials, dtype=np.int64)]

  def keep(self, trials: Sequence[int]) -> None:
    """Only these trials (positions) go on: their open windows are kept."""
    if self._partial is not None:
      self._partial = tuple(x[np.asarray(trials, dtype=np.int64)] for x in self._partial)


def first_bad(steps, names: Sequence[str], rows_RxM) -> Optional[tuple[int, int, dict]]:
  """``(row, step, {name: value})`` of the first record with a NaN/Inf, else ``None``."""
  bad = np.nonzero(~np.isfinite(rows_RxM).all(axis=1))[0]
  if not bad.size:
    return None
  r = int(bad[0])
  vals = dict(zip(names, rows_RxM[r].tolist()))
  return r, int(steps[r]), {k: v for k, v in vals.items() if not np.isfinite(v)}


def last_values(records: Sequence[dict]) -> tuple[dict, dict]:
  """``(last_train, last_eval)``: the values of the last train and eval records."""
  last = {"train": {}, "eval": {}}
  for r in records:
    last[r["split"]] = writers.values(r)
  return last["train"], last["eval"]
