"""Metric writers: JSON lines (for scripts) and TensorBoard events (no TensorFlow)."""
from __future__ import annotations

import json
import math
import os
import time
from typing import Iterable, Mapping, Optional

METRICS_FILE = "metrics.jsonl"


def _json_value(v: float):
  # JSON has no NaN/Inf; keep them readable and round-trippable as strings.
  return v if math.isfinite(v) else str(v)


class MetricWriter:
  """Appends ``{"step", "split", "time", <metric>: value}`` records.

  On resume from step ``s`` it first drops records after ``s`` (they came from
  the interrupted run past its last checkpoint and will be written again), and
  asks TensorBoard to purge events from ``s + 1`` on. When ``s`` is not a
  multiple of ``log_every``, the first record after the resume averages the
  steps since ``s`` only (the interrupted run's partial window is not kept).
  """

  def __init__(self, workdir: str, resume_step: int = 0, tensorboard: bool = True):
    os.makedirs(workdir, exist_ok=True)
    self.path = os.path.join(workdir, METRICS_FILE)
    if resume_step == 0 and os.path.exists(self.path):
      os.remove(self.path)
    elif os.path.exists(self.path):
      kept = [r for r in read_records(self.path) if r["step"] <= resume_step]
      with open(self.path, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in kept)
    self._file = open(self.path, "a")
    self._tb = None
    if tensorboard:
      from tensorboardX import SummaryWriter  # heavy import, only when used
      self._tb = SummaryWriter(os.path.join(workdir, "tb"),
                               purge_step=resume_step + 1 if resume_step else None)

  def write(self, step: int, split: str, metrics: Mapping[str, float]) -> None:
    rec = {"step": int(step), "split": split, "time": round(time.time(), 3)}
    rec.update({k: _json_value(float(v)) for k, v in metrics.items()})
    self._file.write(json.dumps(rec) + "\n")
    if self._tb is not None:
      self._write_tb(step, split, metrics)

  def _write_tb(self, step: int, split: str, metrics: Mapping[str, float]) -> None:
    # One event holding every scalar of the record: a seventh of add_scalar's events,
    # which dominated the writing of long runs and of vmapped sweeps.
    from tensorboardX.proto.summary_pb2 import Summary
    summary = Summary(value=[Summary.Value(tag=f"{split}/{k}", simple_value=float(v))
                             for k, v in metrics.items()])
    self._tb._get_file_writer().add_summary(summary, int(step))

  def flush(self) -> None:
    self._file.flush()
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    self.flush()
    self._file.close()
    if self._tb is not None:
      self._tb.close()


def read_records(path: str, split: Optional[str] = None) -> list[dict]:
  """Reads a metrics.jsonl (a file or a workdir), optionally one split."""
  if os.path.isdir(path):
    path = os.path.join(path, METRICS_FILE)
  out = []
  with open(path) as f:
    for lineno, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        rec = json.loads(line)
      except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{lineno}: not a JSON record ({e}).") from e
      if split is None or rec.get("split") == split:
        out.append(rec)
  return out


def series(records: Iterable[dict], key: str) -> tuple[list[int], list[float]]:
  """``(steps, values)`` of one metric across records that have it."""
  xs, ys = [], []
  for r in records:
    if key in r:
      xs.append(r["step"])
      ys.append(float(r[key]))
  return xs, ys


def epoch_curves(workdir: str, steps_per_epoch: int) -> dict[str, tuple[list[float], list[float]]]:
  """Per-epoch curves of a run: ``{'<split>/<metric>': (epochs, values)}``."""
  out = {}
  for rec in read_records(workdir):
    for k, v in rec.items():
      if k in ("step", "split", "time"):
        continue
      xs, ys = out.setdefault(f"{rec['split']}/{k}", ([], []))
      xs.append(rec["step"] / steps_per_epoch)
      ys.append(float(v))
  return out


def write_comparison(out: str, heading: str, table: str, reports: dict, figure: str,
                     verbose: bool = True) -> dict:
  """``<out>/comparison.md`` (heading, table, figure) and ``results.json`` of a variants
  comparison; prints the table. Returns ``{'reports', 'figure', 'table'}``."""
  with open(os.path.join(out, "comparison.md"), "w") as f:
    f.write(f"# {heading}\n\n{table}\n\n![comparison]({os.path.basename(figure)})\n")
  with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(reports, f, indent=2)
  if verbose:
    print(table)
    print(f"Figure: {figure}")
  return {"reports": reports, "figure": figure, "table": table}

