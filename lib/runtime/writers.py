"""Metric writers: JSON lines (for scripts) and TensorBoard events (no TensorFlow)."""
from __future__ import annotations

import json
import math
import os
import shutil
import socket
import struct
import time
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np

from lib.runtime import files

METRICS_FILE = "metrics.jsonl"


def _json_value(v: float):
  # JSON has no NaN/Inf; keep them readable and round-trippable as strings.
  return v if math.isfinite(v) else str(v)


class MetricWriter:
  """Appends ``{"step", "split", "time", <metric>: value}`` records.

  On resume from step ``s`` it first drops records after ``s`` (they came from
  the interrupted run past its last checkpoint and will be written again), and
  asks TensorBoard to purge events from ``s + 1`` on. When ``s`` is not a
  multiple of ``log_every_steps``, the first record after the resume averages the
  steps since ``s`` only (the interrupted run's partial window is not kept).
  """

  def __init__(self, workdir: str, resume_step: int = 0, tensorboard: bool = True):
    os.makedirs(workdir, exist_ok=True)
    self.path = os.path.join(workdir, METRICS_FILE)
    if resume_step == 0 and os.path.exists(self.path):
      os.remove(self.path)
    elif os.path.exists(self.path):
      _drop_torn_line(self.path)
      kept = [r for r in read_records(self.path) if r["step"] <= resume_step]
      files.atomic_write(self.path, "".join(json.dumps(r) + "\n" for r in kept))
    self._file = open(self.path, "a")
    self._tb = EventFile(os.path.join(workdir, "tb"), resume_step + 1 if resume_step else None) \
        if tensorboard else None

  def write(self, step: int, split: str, metrics: Mapping[str, float]) -> None:
    names = list(metrics)
    self.write_block([step], split, names, np.array([[float(metrics[k]) for k in names]]))

  def write_block(self, steps: Sequence[int], split: str, names: Sequence[str],
                  values_RxM: np.ndarray) -> None:
    """Many records at once: row ``r`` holds the metrics ``names`` at ``steps[r]``
    (a vmapped sweep writes 2,000 records per trial; one call, one timestamp)."""
    now = round(time.time(), 3)
    values_RxM = np.asarray(values_RxM, np.float64).reshape(len(steps), len(names))
    rows = values_RxM.tolist()
    if np.isfinite(values_RxM).all():
      # float.__repr__ is what json.dumps writes for a finite float: same bytes, 5x faster.
      head = '{"step": %d, "split": ' + json.dumps(split) + ', "time": ' + repr(now)
      template = head + "".join(", " + json.dumps(k).replace("%", "%%") + ": %r" for k in names) + "}\n"
      self._file.write("".join(template % (s, *r) for s, r in zip(steps, rows)))
    else:
      for s, r in zip(steps, rows):
        rec = {"step": int(s), "split": split, "time": now}
        rec.update({k: _json_value(v) for k, v in zip(names, r)})
        self._file.write(json.dumps(rec) + "\n")
    if self._tb is not None:
      self._tb.write_scalars(steps, [f"{split}/{k}" for k in names], values_RxM, now)

  def flush(self) -> None:
    self._file.flush()
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    self.flush()
    self._file.close()
    if self._tb is not None:
      self._tb.close()


def _varint(n: int) -> bytes:
  out = bytearray()
  while True:
    byte, n = n & 0x7F, n >> 7
    out.append(byte | (0x80 if n else 0))
    if not n:
      return bytes(out)


class EventFile:
  """A TensorBoard event file of scalars, written synchronously.

  tensorboardX's ``SummaryWriter`` builds a protobuf per event and hands it to a
  writer thread through a multiprocessing queue: 200 us an event, which made
  writing, not training, the cost of long runs and vmapped sweeps. Scalar events
  are simple enough to encode directly (``Event{wall_time=1, step=2, summary=5
  {value=1 {tag=1, simple_value=2}}}``; tests parse them back with the proto);
  the record framing is TFRecord's, with tensorboardX's masked CRC32C (native with
  the ``crc32c`` package). ``flush`` does not fsync: a crash loses at most what
  the checkpoint will write again.
  ``purge_step`` hides events at and after it from an earlier, interrupted run.
  """

  def __init__(self, logdir: str, purge_step: Optional[int] = None):
    from tensorboardX.proto.event_pb2 import Event, SessionLog
    from tensorboardX.record_writer import masked_crc32c
    self._crc = masked_crc32c
    os.makedirs(logdir, exist_ok=True)
    # Time first (TensorBoard reads files in name order); the pid keeps two writers
    # started in the same second (a quick resume) from truncating each other.
    name = f"events.out.tfevents.{time.time():.6f}.{socket.gethostname()}.{os.getpid()}"
    self.path = os.path.join(logdir, name)
    self._file = open(self.path, "wb")
    self._write(Event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString())
    if purge_step is not None:  # what TensorBoard reads as "drop later events"
      self._write(Event(step=purge_step, file_version="brain.Event:2").SerializeToString())
      self._write(Event(step=purge_step, session_log=SessionLog(
          status=SessionLog.START)).SerializeToString())
    self._heads: dict[tuple, list[bytes]] = {}

  def _value_heads(self, tags: tuple) -> list[bytes]:
    if tags not in self._heads:
      heads = []
      for tag in tags:
        t = tag.encode()
        value = b"\x0a" + _varint(len(t)) + t + b"\x15"  # + 4 bytes of float32
        heads.append(b"\x0a" + _varint(len(value) + 4) + value)
      self._heads[tags] = heads
    return self._heads[tags]

  def write_scalars(self, steps: Sequence[int], tags: Sequence[str], rows, wall_time: float
                    ) -> None:
    """One event per step holding that row's scalars, one per tag. The records of
    a block are laid out as rows of one byte matrix (only the step's varint, the
    floats and the CRC differ between them)."""
    heads = self._value_heads(tuple(tags))
    values = np.asarray(rows, "<f4").reshape(len(steps), len(tags))
    steps = np.asarray(steps, np.int64).reshape(-1)
    if not len(steps):
      return
    summary_len = sum(len(h) + 4 for h in heads)
    prefix = b"\x09" + struct.pack("<d", wall_time) + b"\x10"
    suffix = b"\x2a" + _varint(summary_len)
    widths = np.ones(len(steps), np.int64)
    for w in range(2, 10):  # varint width of each step (steps < 2**63)
      widths += steps >= (1 << (7 * (w - 1)))
    cut = np.nonzero(np.diff(widths))[0] + 1  # runs of equal width, in step order
    self._file.write(b"".join(
        self._block(steps[a:b], int(widths[a]), values[a:b], heads, prefix, suffix, summary_len)
        for a, b in zip(np.r_[0, cut], np.r_[cut, len(steps)])))

  def _block(self, steps, width, values, heads, prefix, suffix, summary_len) -> bytes:
    length = len(prefix) + width + len(suffix) + summary_len  # of each event
    header = struct.pack("<Q", length)
    rec = np.empty((len(steps), 12 + length + 4), np.uint8)
    rec[:, :8] = np.frombuffer(header, np.uint8)
    rec[:, 8:12] = np.frombuffer(struct.pack("<I", self._crc(header)), np.uint8)
    pos = 12 + len(prefix)
    rec[:, 12:pos] = np.frombuffer(prefix, np.uint8)
    for j in range(width):  # little-endian base-128 groups, high bit = more follow
      rec[:, pos + j] = ((steps >> (7 * j)) & 0x7F) | (0x80 if j < width - 1 else 0)
    pos += width
    rec[:, pos:pos + len(suffix)] = np.frombuffer(suffix, np.uint8)
    pos += len(suffix)
    for j, h in enumerate(heads):
      rec[:, pos:pos + len(h)] = np.frombuffer(h, np.uint8)
      pos += len(h)
      rec[:, pos:pos + 4] = values[:, j:j + 1].view(np.uint8)
      pos += 4
    crcs = [self._crc(r.tobytes()) for r in rec[:, 12:pos]]
    rec[:, pos:] = np.array(crcs, "<u4").view(np.uint8).reshape(-1, 4)
    return rec.tobytes()

  def _write(self, event: bytes) -> None:
    header = struct.pack("<Q", len(event))
    self._file.write(header + struct.pack("<I", self._crc(header)) + event
                     + struct.pack("<I", self._crc(event)))

  def flush(self) -> None:
    self._file.flush()

  def close(self) -> None:
    self._file.close()


def _drop_torn_line(path: str) -> None:
  """Cuts a last line without its newline: a write that a kill -9 cut short."""
  with open(path, "rb+") as f:
    data = f.read()
    if data and not data.endswith(b"\n"):
      f.truncate(data.rfind(b"\n") + 1)


def read_records(path: str, split: Optional[str] = None) -> list[dict]:
  """Reads a metrics.jsonl (a file or a workdir), optionally one split."""
  if os.path.isdir(path):
    path = os.path.join(path, METRICS_FILE)
  with open(path) as f:
    lines = [l for l in f.read().splitlines() if l.strip()]
  try:  # one parse of the whole file: 3x faster than a json.loads per line
    records = json.loads("[" + ",".join(lines) + "]")
    if not all(isinstance(r, dict) for r in records):
      raise json.JSONDecodeError("not an object", "", 0)
  except json.JSONDecodeError:
    records = []
    with open(path) as f:  # find the bad line for the message
      for lineno, line in enumerate(f, 1):
        if not line.strip():
          continue
        try:
          rec = json.loads(line)
        except json.JSONDecodeError as e:
          raise ValueError(f"{path}:{lineno}: not a JSON record ({e}).") from e
        if not isinstance(rec, dict):
          raise ValueError(f"{path}:{lineno}: expected a JSON object, got {line.strip()[:40]!r}.")
        records.append(rec)
  return [r for r in records if split is None or r.get("split") == split]


RECORD_KEYS = ("step", "split", "time")  # a record's fields that are not metrics


def values(record: Mapping[str, Any]) -> dict:
  """A record's metrics: ``{name: value}`` without ``step``, ``split`` and ``time``."""
  return {k: v for k, v in record.items() if k not in RECORD_KEYS}


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
    for k, v in values(rec).items():
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



def write_hparams(out: str, overrides: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]],
                  folder: str = "hparams") -> str:
  """TensorBoard's HParams view of a sweep (``tensorboard --logdir <out>/hparams``):
  one run per trial with its swept values, status and final metrics (tensorboardX's
  HParams protos). Rewritten whole each time."""
  from tensorboardX import FileWriter
  from tensorboardX.summary import hparams, scalar
  top = os.path.join(out, folder)
  shutil.rmtree(top, ignore_errors=True)
  for over, row in zip(overrides, rows):
    h = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in over.items()}
    h["status"] = row["status"]
    m = {k: float(v) for k, v in row.items()
         if "/" in k and isinstance(v, (int, float)) and math.isfinite(v)}
    w = FileWriter(os.path.join(top, row["trial"]))
    for summary in hparams(h, m):
      w.add_summary(summary)
    for k, v in m.items():
      w.add_summary(scalar(k, v), row.get("steps") or 0)
    w.close()
  return top
