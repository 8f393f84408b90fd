"""The shared trainer: outputs, resume, NaN guard, metrics."""
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from tests.lib import toy
from lib import errors
from lib.errors import ConfigChanged
from lib.runtime import files, writers
from lib.train import checkpoint, trainer
from lib.train.state import TrainState, restore_params
from lib.train.step import make_train_step
from lib.train.summary import read_summary

pytestmark = pytest.mark.slow  # trains or starts processes: left out of `make test-fast`


def built(c):
  """``(task, resolved config)`` of the toy experiment."""
  b = toy.build(c)
  return b.task, b.config


def small_config(variant="rmsprop", epochs=60):
  c = toy.get_config(variant)
  c.trainer.num_epochs = epochs
  c.trainer.checkpoint_every_steps = 20
  c.trainer.eval_every_steps = 25
  c.trainer.log_every_steps = 5
  c.trainer.flush_every = 3
  return c


def test_a_completed_run_run_again_trains_and_writes_nothing(tmp_path):
  first = trainer.fit(*built(small_config()), str(tmp_path))
  before = {os.path.relpath(os.path.join(d, f), tmp_path): os.stat(os.path.join(d, f)).st_mtime_ns
            for d, _, fs in os.walk(tmp_path) for f in fs}
  again = trainer.fit(*built(small_config()), str(tmp_path))
  after = {os.path.relpath(os.path.join(d, f), tmp_path): os.stat(os.path.join(d, f)).st_mtime_ns
           for d, _, fs in os.walk(tmp_path) for f in fs}
  assert again == first
  assert after == before  # no new event file, no rewritten summary, config or curve


def test_an_invalid_optimizer_value_is_refused_before_anything_is_written(tmp_path):
  c = small_config()
  c.optimizer.lr = -1.0
  task, c = built(c)
  with pytest.raises(trainer.ConfigError, match=r"^optimizer.lr=-1.0: expected a positive"):
    trainer.fit(task, c, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


class Crash(RuntimeError):
  pass


def crashing(task, at_step):
  def batch(step):
    if step == at_step:
      raise Crash(f"data error at step {step}")
    return task.train_batch(step)
  return dataclasses.replace(task, train_batch=batch)


def test_run_writes_everything(tmp_path):
  summary = trainer.fit(*built(small_config()), str(tmp_path))
  for f in ("config.json", "summary.json", "metrics.jsonl", "loss_curve.png"):
    assert (tmp_path / f).exists(), f
  assert any(n.startswith("events") for n in os.listdir(tmp_path / "tb"))
  assert checkpoint.Checkpointer(str(tmp_path / "checkpoints"), 20).all_steps() == [20, 40, 60]
  on_disk = json.loads((tmp_path / "summary.json").read_text())
  assert on_disk["status"] == "completed" and on_disk["steps"] == 60
  assert set(on_disk["extra"]) == {"w_x", "w_rec"}
  assert on_disk["config"]["optimizer"]["name"] == "rmsprop"
  saved = json.loads((tmp_path / "config.json").read_text())["trainer"]
  assert (saved["num_steps"], saved["num_epochs"], saved["eval_every_steps"]) == (60, None, 25)
  train = writers.read_records(str(tmp_path), "train")
  assert [r["step"] for r in train] == list(range(5, 61, 5))
  assert {"loss", "cost", "mse", "grad_norm", "lr", "w_x", "w_rec"} <= set(train[0])
  evals = writers.read_records(str(tmp_path), "eval")
  assert [r["step"] for r in evals] == [25, 50, 60]
  assert summary["final"]["eval/mse"] == evals[-1]["mse"]


def test_window_metrics_are_weighted_means(tmp_path):
  """A record's 'cost' is the mean over its window of per-step costs."""
  c1 = small_config(epochs=10)
  c1.trainer.log_every_steps = 1
  trainer.fit(*built(c1), str(tmp_path / "a"))
  c5 = small_config(epochs=10)
  trainer.fit(*built(c5), str(tmp_path / "b"))
  per_step = [r["cost"] for r in writers.read_records(str(tmp_path / "a"), "train")]
  windows = [r["cost"] for r in writers.read_records(str(tmp_path / "b"), "train")]
  np.testing.assert_allclose(windows, [np.mean(per_step[:5]), np.mean(per_step[5:])], rtol=1e-5)


@pytest.mark.parametrize("lose_crash_checkpoint", [False, True])
def test_resume_after_interruption_matches_uninterrupted_run(tmp_path, lose_crash_checkpoint):
  ref_dir, run_dir = str(tmp_path / "ref"), str(tmp_path / "run")
  ref = trainer.fit(*built(small_config()), ref_dir)

  with pytest.raises(Crash):
    task, rc = built(small_config())
    trainer.fit(crashing(task, 47), rc, run_dir)
  stopped = read_summary(run_dir)
  assert stopped["status"] == "failed" and "Crash" in stopped["error"]
  ckpts = checkpoint.Checkpointer(os.path.join(run_dir, "checkpoints"), 20)
  assert ckpts.latest_step() == 47  # saved on the way out
  if lose_crash_checkpoint:  # as after a hard kill: only the periodic checkpoint is left
    shutil.rmtree(os.path.join(run_dir, "checkpoints", "47"))

  resumed = trainer.fit(*built(small_config()), run_dir)
  assert resumed["resumed_from"] == (40 if lose_crash_checkpoint else 47)
  assert resumed["steps"] == 60 and resumed["status"] == "completed"
  assert resumed["extra"] == ref["extra"]
  assert resumed["final"] == ref["final"]
  ours = writers.read_records(run_dir)
  theirs = writers.read_records(ref_dir)
  key = lambda r: (r["step"], r["split"])
  assert [key(r) for r in ours] == [key(r) for r in theirs]  # no duplicated records
  # Resuming off a log boundary (step 47, log_every 5), the step-50 record averages
  # steps 48-50 instead of 46-50; every other record is identical.
  partial = set() if lose_crash_checkpoint else {(50, "train")}
  for a, b in zip(ours, theirs):
    if key(a) not in partial:
      assert {k: v for k, v in a.items() if k != "time"} == {k: v for k, v in b.items() if k != "time"}


def test_nan_stops_cleanly_and_keeps_last_good_checkpoint(tmp_path):
  c = small_config("gd", epochs=100)
  c.optimizer.lr = 0.02  # far too large for the sum-of-squares cost: diverges
  c.trainer.checkpoint_every_steps = 2
  with pytest.raises(errors.NonFiniteError, match="Non-finite training metrics at step"):
    trainer.fit(*built(c), str(tmp_path))
  summary = read_summary(str(tmp_path))
  assert summary["status"] == "diverged" and "last good checkpoint" in summary["error"]
  last = summary["checkpoint_step"]
  assert last is not None and 0 < last < summary["steps"]
  params, step = restore_params(*built(c), str(tmp_path))
  assert step == last
  assert all(np.isfinite(np.asarray(l)).all() for l in jax.tree.leaves(params))
  records = writers.read_records(str(tmp_path), "train")
  assert not np.isfinite(float(records[-1]["loss"]))  # the bad step is on record


def test_a_run_that_diverges_before_any_checkpoint_says_so(tmp_path):
  c = small_config("gd", epochs=100)
  c.optimizer.lr = 0.02
  c.trainer.checkpoint_every_steps = 0  # only at the end: none exists when it diverges
  with pytest.raises(errors.NonFiniteError, match="there is no checkpoint yet"):
    trainer.fit(*built(c), str(tmp_path))
  s = read_summary(str(tmp_path))
  assert s["status"] == "diverged" and s["checkpoint_step"] is None
  assert "step None" not in s["error"]
  diverged_at = int(s["error"].split("at step ")[1].split(":")[0])
  assert s["steps"] == diverged_at < 100  # where it stopped, not the planned length


def test_stateful_task_threads_and_resets_the_carry():
  """Task.init_carry: the carry crosses steps and ``reset`` restarts it."""
  import jax.numpy as jnp
  import optax

  def loss_fn(params, batch, rng, carry):
    new = carry + batch["x"] * params["w"]
    return jnp.sum(new ** 2), ({"carry": jnp.sum(new)}, new)

  tx = optax.sgd(0.0)  # parameters fixed: only the carry moves
  step = jax.jit(make_train_step(loss_fn, tx, init_carry=lambda: jnp.zeros(2)))
  params = {"w": jnp.ones(())}
  state = TrainState(step=jnp.zeros((), jnp.int32), params=params,
                             opt_state=tx.init(params), carry=jnp.zeros(2))
  seen = []
  for i in range(5):
    batch = {"x": jnp.ones(2), "reset": jnp.asarray(i == 3)}
    state, m = step(state, batch, jax.random.key(0))
    seen.append(float(m["carry"].total))
  assert seen == [2.0, 4.0, 6.0, 2.0, 4.0]
  assert state.carry.tolist() == [2.0, 2.0]


def test_final_progress_line_is_printed_once(tmp_path, monkeypatch):
  lines = []
  monkeypatch.setattr(trainer.logging, "info",
                      lambda fmt, *a, **k: lines.append(str(fmt) % a if a else str(fmt)))
  c = small_config(epochs=30)
  trainer.fit(*built(c), str(tmp_path))
  final = [l for l in lines if l.startswith("step 30/30")]
  assert len(final) == 1, final


def _tb_scalars(tb_dir):
  """(step, tag, value) of every scalar in a TensorBoard event file (TFRecord framing)."""
  import struct
  from tensorboardX.proto.event_pb2 import Event
  out = []
  for name in sorted(os.listdir(tb_dir)):
    data = (tb_dir / name).read_bytes()
    pos = 0
    while pos < len(data):
      (length,) = struct.unpack("<Q", data[pos:pos + 8])
      event = Event.FromString(data[pos + 12:pos + 12 + length])
      pos += 12 + length + 4
      out += [(event.step, v.tag, v.simple_value) for v in event.summary.value]
  return out


def test_tensorboard_events_hold_every_metric_of_every_record(tmp_path):
  c = small_config(epochs=20)
  trainer.fit(*built(c), str(tmp_path))
  scalars = _tb_scalars(tmp_path / "tb")
  records = writers.read_records(str(tmp_path))
  want = [(r["step"], f"{r['split']}/{k}", v) for r in records
          for k, v in r.items() if k not in ("step", "split", "time")]
  assert len(scalars) == len(want) > 20
  got = {(s, t): v for s, t, v in scalars}
  for step, tag, v in want:
    assert got[step, tag] == pytest.approx(v, rel=1e-6, abs=1e-30), (step, tag)


def test_resume_with_another_config_stops_before_touching_the_workdir(tmp_path):
  trainer.fit(*built(small_config(epochs=20)), str(tmp_path))
  saved = (tmp_path / "config.json").read_text()
  other = small_config(epochs=20)
  other.optimizer.lr = 3e-3
  with pytest.raises(ConfigChanged, match=r"optimizer.lr 0.001 -> 0.003\): give a new --workdir"):
    trainer.fit(*built(other), str(tmp_path))
  assert (tmp_path / "config.json").read_text() == saved
  assert read_summary(str(tmp_path))["steps"] == 20 and not (tmp_path / ".lock").exists()
  longer = small_config(epochs=40)
  with pytest.raises(ConfigChanged, match="trainer.num_steps 20 -> 40.*resume_longer=True"):
    trainer.fit(*built(longer), str(tmp_path))
  longer.trainer.resume_longer = True
  longer.trainer.plot = False  # reporting fields may change on a resume
  summary = trainer.fit(*built(longer), str(tmp_path))
  assert (summary["status"], summary["steps"], summary["resumed_from"]) == ("completed", 40, 20)


def test_a_workdir_in_use_refuses_a_second_run(tmp_path):
  holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
  try:
    (tmp_path / ".lock").write_text(json.dumps({"host": socket.gethostname(),
                                                "pid": holder.pid}))
    with pytest.raises(files.WorkdirBusy, match="in use by pid"):
      trainer.fit(*built(small_config(epochs=5)), str(tmp_path))
    assert not (tmp_path / "config.json").exists()
  finally:
    holder.kill()
    holder.wait()


def test_a_checkpoint_that_cannot_be_written_stops_the_run_with_a_summary(tmp_path, monkeypatch):
  def full(self, *args, **kwargs):
    raise OSError(28, "No space left on device")
  monkeypatch.setattr(checkpoint.ocp.CheckpointManager, "save", full)
  with pytest.raises(errors.StorageError, match="No space left on device"):
    trainer.fit(*built(small_config(epochs=30)), str(tmp_path))
  s = read_summary(str(tmp_path))
  assert s["status"] == "failed" and "writing a checkpoint in" in s["error"]
  assert s["steps"] == 20 and not (tmp_path / ".lock").exists()


def test_a_run_re_entered_after_its_final_checkpoint_reports_its_metrics_once(tmp_path):
  """As after a kill between the final checkpoint and summary.json."""
  first = trainer.fit(*built(small_config()), str(tmp_path))
  os.remove(tmp_path / "summary.json")
  again = trainer.fit(*built(small_config()), str(tmp_path))
  assert again["status"] == "completed" and again["steps"] == 60
  assert again["final"] == first["final"] and "train/cost" in again["final"]
  evals = [r["step"] for r in writers.read_records(str(tmp_path), "eval")]
  assert evals == [25, 50, 60]  # the final evaluation is not written twice


def test_the_tasks_compiler_options_reach_the_jitted_step(tmp_path):
  task, config = built(small_config(epochs=1))
  bad = dataclasses.replace(task, compiler_options={"xla_cpu_experimental_ynn_fusion_type": "NO_SUCH"})
  with pytest.raises(Exception, match="xla_cpu_experimental_ynn_fusion_type"):
    trainer.fit(bad, config, str(tmp_path / "bad"))
  good = dataclasses.replace(task, compiler_options={
      "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"})
  with_options = trainer.fit(good, config, str(tmp_path / "good"))
  plain = trainer.fit(task, config, str(tmp_path / "plain"))["final"]
  assert with_options["final"] == pytest.approx(plain, rel=1e-6)
