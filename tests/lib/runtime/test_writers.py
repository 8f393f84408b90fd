"""Metric writers: JSON lines and the directly encoded TensorBoard events."""
import json
import math
import os
import struct

import numpy as np
import pytest
from tensorboardX.proto.event_pb2 import Event, SessionLog
from tensorboardX.proto.summary_pb2 import Summary
from tensorboardX.record_writer import masked_crc32c

from lib.runtime import writers


def read_events(tb_dir):
  """Every event of every file in ``tb_dir``, checking the TFRecord CRCs."""
  out = []
  for name in sorted(os.listdir(tb_dir)):
    data = open(os.path.join(tb_dir, name), "rb").read()
    pos = 0
    while pos < len(data):
      header = data[pos:pos + 8]
      (length,) = struct.unpack("<Q", header)
      assert struct.unpack("<I", data[pos + 8:pos + 12])[0] == masked_crc32c(header)
      body = data[pos + 12:pos + 12 + length]
      assert struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])[0] == masked_crc32c(body)
      out.append(Event.FromString(body))
      pos += 16 + length
  return out


def test_encoded_events_equal_the_protobuf_messages(tmp_path):
  steps = [0, 1, 127, 128, 300, 2 ** 40]
  names = ["loss", "lr", "grad_norm", "a_much_longer_metric_name_" * 6]
  rows = np.random.default_rng(0).normal(size=(len(steps), len(names)))
  rows[0, 0] = 0.0
  f = writers.EventFile(str(tmp_path))
  f.write_scalars(steps, [f"train/{n}" for n in names], rows.tolist(), 1234.5)
  f.close()
  events = read_events(tmp_path)
  assert events[0].file_version == "brain.Event:2"
  want = [Event(wall_time=1234.5, step=s, summary=Summary(value=[
      Summary.Value(tag=f"train/{n}", simple_value=v) for n, v in zip(names, row)]))
          for s, row in zip(steps, rows.tolist())]
  assert events[1:] == want


def test_write_block_matches_json_dumps_and_tensorboard(tmp_path):
  w = writers.MetricWriter(str(tmp_path))
  vals = np.array([[1.5, 1e-7, 3.0], [2.0 / 3.0, -4.25, 1e30]])
  w.write_block([10, 20], "train", ["loss", "lr", 'odd "%s" name'], vals)
  w.write(30, "eval", {"acc": 0.5})
  w.close()
  lines = open(tmp_path / writers.METRICS_FILE).read().splitlines()
  recs = [json.loads(l) for l in lines]
  assert [r["step"] for r in recs] == [10, 20, 30]
  for line, r in zip(lines, recs):
    assert line == json.dumps(r)  # byte for byte what json.dumps writes
  assert recs[1]["loss"] == 2.0 / 3.0 and recs[1]['odd "%s" name'] == 1e30
  assert recs[2] == {"step": 30, "split": "eval", "time": recs[2]["time"], "acc": 0.5}
  scalars = {(e.step, v.tag): v.simple_value for e in read_events(tmp_path / "tb")
             for v in e.summary.value}
  assert scalars[20, "train/loss"] == pytest.approx(2.0 / 3.0)
  assert scalars[30, "eval/acc"] == 0.5 and len(scalars) == 7


def test_non_finite_values_are_readable_strings(tmp_path):
  w = writers.MetricWriter(str(tmp_path), tensorboard=False)
  w.write_block([1], "train", ["loss", "norm"], np.array([[float("nan"), float("inf")]]))
  w.close()
  (rec,) = writers.read_records(str(tmp_path))
  assert rec["loss"] == "nan" and rec["norm"] == "inf"
  assert math.isnan(float(rec["loss"]))


def test_resume_drops_later_records_and_purges_tensorboard(tmp_path):
  w = writers.MetricWriter(str(tmp_path))
  w.write_block([1, 2, 3, 4], "train", ["loss"], np.arange(4.0)[:, None])
  w.close()
  w = writers.MetricWriter(str(tmp_path), resume_step=2)
  w.write(3, "train", {"loss": 30.0})
  w.close()
  assert [(r["step"], r["loss"]) for r in writers.read_records(str(tmp_path))] == [
      (1, 0.0), (2, 1.0), (3, 30.0)]
  files = sorted(os.listdir(tmp_path / "tb"))
  assert len(files) == 2  # the resumed writer did not overwrite the first file
  second = read_events(tmp_path / "tb")[5:]  # the first file: a header and 4 events
  assert second[0].file_version == "brain.Event:2" and second[3].step == 3
  assert second[1].step == 3 and second[1].file_version == "brain.Event:2"
  assert second[2].step == 3 and second[2].session_log.status == SessionLog.START


def test_resume_drops_a_line_a_kill_cut_short(tmp_path):
  w = writers.MetricWriter(str(tmp_path), tensorboard=False)
  w.write_block([1, 2], "train", ["loss"], np.array([[1.0], [2.0]]))
  w.close()
  with open(tmp_path / "metrics.jsonl", "a") as f:
    f.write('{"step": 3, "split": "tr')  # the process died inside this write
  w = writers.MetricWriter(str(tmp_path), resume_step=2, tensorboard=False)
  w.write(3, "train", {"loss": 3.0})
  w.close()
  assert [(r["step"], r["loss"]) for r in writers.read_records(str(tmp_path))] == [
      (1, 1.0), (2, 2.0), (3, 3.0)]


@pytest.mark.parametrize("bad", ['{"step": 2, "split": "train"', "[1, 2]", "3"])
def test_a_bad_line_is_named(tmp_path, bad):
  path = tmp_path / writers.METRICS_FILE
  path.write_text('{"step": 1, "split": "train", "loss": 1.0}\n\n' + bad + "\n")
  with pytest.raises(ValueError, match=r"metrics.jsonl:3: "):
    writers.read_records(str(tmp_path))
  path.write_text('{"step": 1, "split": "train", "loss": 1.0}\n{"step": 1, "split": "eval"}\n')
  assert [r["split"] for r in writers.read_records(str(tmp_path), "eval")] == ["eval"]
