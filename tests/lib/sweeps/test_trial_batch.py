"""lib.sweeps.trial_batch: chunked vmapped training writes what separate runs write."""
import dataclasses
import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.lib import toy
from lib import errors
from lib.runtime import writers
from lib.sweeps import space, trial_batch
from lib.train import trainer
from lib.train.state import restore_params
from lib.train.summary import read_summary

pytestmark = pytest.mark.slow  # trains or starts processes: left out of `make test-fast`


def built(c):
  """``(task, resolved config)`` of the toy experiment."""
  b = toy.build(c)
  return b.task, b.config


def _config(**trainer_fields):
  c = space.apply(toy.get_config("rmsprop"), {"trainer.num_epochs": 60})
  c.unlock()
  c.trainer.update(trainer_fields)
  c.lock()
  return c


def test_every_record_equals_a_separate_run(tmp_path):
  # Windows of 4 steps, evaluation every 25, chunks of at most 7: nothing aligned.
  base = _config(log_every_steps=4, eval_every_steps=25, flush_every=3)
  trials = [{"seed": 1, "optimizer.lr": 1e-3}, {"seed": 5, "optimizer.lr": 3e-3}]
  dirs = [str(tmp_path / f"t{i}") for i in range(2)]
  trial_batch.fit(toy.build, base, trials, dirs, max_chunk=7)
  for i, t in enumerate(trials):
    c = space.apply(base, t)
    trainer.fit(*built(c), str(tmp_path / f"alone{i}"))
    together = writers.read_records(dirs[i])
    alone = writers.read_records(str(tmp_path / f"alone{i}"))
    assert [(r["step"], r["split"]) for r in together] == [(r["step"], r["split"]) for r in alone]
    assert [r["step"] for r in together if r["split"] == "eval"] == [25, 50, 60]
    for a, b in zip(together, alone):
      assert set(a) == set(b)
      for k in set(a) - {"step", "split", "time"}:
        assert a[k] == pytest.approx(b[k], rel=2e-4, abs=1e-6), (i, a["step"], k)


def test_trials_differing_in_clipping_and_decay_equal_separate_runs(tmp_path):
  # 0 turns clipping and decay off; trials with and without them share one program.
  base = _config(log_every_steps=10, eval_every_steps=30)
  trials = [{"seed": 1, "optimizer.clip_norm": 0.0, "optimizer.weight_decay": 0.0},
            {"seed": 1, "optimizer.clip_norm": 0.05, "optimizer.weight_decay": 0.1}]
  dirs = [str(tmp_path / f"t{i}") for i in range(2)]
  trial_batch.fit(toy.build, base, trials, dirs)
  finals = []
  for i, t in enumerate(trials):
    trainer.fit(*built(space.apply(base, t)), str(tmp_path / f"alone{i}"))
    together = writers.read_records(dirs[i])[-1]
    alone = writers.read_records(str(tmp_path / f"alone{i}"))[-1]
    for k in set(alone) - {"step", "split", "time"}:
      assert together[k] == pytest.approx(alone[k], rel=2e-4, abs=1e-6), (i, k)
    finals.append(alone)
  assert finals[0] != finals[1]  # the clipping and decay did act


@pytest.mark.parametrize("blocks", [2, -1])  # -1: auto, one vmap or one by one, as timed
def test_trials_stepped_in_blocks_write_what_one_vmap_writes(tmp_path, blocks, monkeypatch):
  # Three trials in blocks of two: one full block and a remainder of one.
  base = _config(log_every_steps=5, eval_every_steps=30)
  trials = [{"seed": s, "optimizer.lr": lr} for s, lr in ((1, 1e-3), (2, 3e-3), (3, 1e-2))]
  chosen = []
  real = trial_batch.fastest_block
  monkeypatch.setattr(trial_batch, "fastest_block", lambda *a, **k: chosen.append(real(*a, **k))
                      or chosen[-1])
  records = {}
  for block in (0, blocks):
    dirs = [str(tmp_path / f"b{block}-t{i}") for i in range(3)]
    trial_batch.fit(toy.build, base, trials, dirs, max_chunk=7, trials_per_block=block)
    records[block] = [writers.read_records(d) for d in dirs]
  assert chosen == ([] if blocks > 0 else [chosen[0]]) and set(chosen) <= {0, 1}
  for together, blocked in zip(records[0], records[blocks]):
    assert [(r["step"], r["split"]) for r in together] == [(r["step"], r["split"]) for r in blocked]
    for a, b in zip(together, blocked):
      for k in set(a) - {"step", "split", "time"}:
        assert a[k] == pytest.approx(b[k], rel=1e-5, abs=1e-7), (a["step"], k)
  losses = [[r["loss"] for r in rs if r["split"] == "train"] for rs in records[blocks]]
  assert losses[0] != losses[2]  # the blocks did not hand one trial's values to another


class _HostScored:
  """An evaluator whose score is numpy (it cannot be vmapped whole): outputs + score."""

  def __init__(self, calls):
    self.calls = calls

  def outputs(self, params):
    return {"w": jnp.stack([params["w_x"].reshape(()), params["w_rec"].reshape(())])}

  def score(self, outputs):
    self.calls.append(type(outputs["w"]))
    yield "w_norm", float(np.linalg.norm(np.asarray(outputs["w"])))

  def run(self, params):
    yield from self.score(jax.jit(self.outputs)(params))


def test_an_evaluator_split_in_outputs_and_score_is_vmapped_then_scored_per_trial(tmp_path):
  calls = []

  def build(c, data=None):
    b = toy.build(c, data)
    task = dataclasses.replace(b.task, evaluators=(*b.task.evaluators, _HostScored(calls)))
    return dataclasses.replace(b, task=task)

  base = _config(log_every_steps=10, eval_every_steps=30)
  trials = [{"seed": 1, "optimizer.lr": 1e-3}, {"seed": 2, "optimizer.lr": 1e-2}]
  dirs = [str(tmp_path / f"t{i}") for i in range(2)]
  trial_batch.fit(build, base, trials, dirs)
  assert calls and all(t is np.ndarray for t in calls)  # scored on the host, per trial
  for i, t in enumerate(trials):
    b = build(space.apply(base, t))
    trainer.fit(b.task, b.config, str(tmp_path / f"alone{i}"))
    together = [r for r in writers.read_records(dirs[i]) if r["split"] == "eval"]
    alone = [r for r in writers.read_records(str(tmp_path / f"alone{i}")) if r["split"] == "eval"]
    assert [r["step"] for r in together] == [r["step"] for r in alone] == [30, 60]
    for a, b_ in zip(together, alone):
      assert {"mse", "w_norm"} <= set(a)
      assert a["w_norm"] == pytest.approx(b_["w_norm"], rel=2e-4) and a["mse"] == pytest.approx(
          b_["mse"], rel=2e-4)


def test_a_diverging_trial_stops_alone_and_the_others_complete(tmp_path):
  base = _config()
  trials = [{"optimizer.lr": 1e-3}, {"optimizer.lr": 1e4}]
  dirs = [str(tmp_path / f"t{i}") for i in range(2)]
  ok, bad = trial_batch.fit(toy.build, base, trials, dirs)
  assert ok["status"] == "completed" and ok["checkpoint_step"] == 60
  assert bad["status"] == "diverged" and "Non-finite" in bad["error"]
  assert bad["checkpoint_step"] is None
  recs = writers.read_records(dirs[1], "train")
  assert not np.isfinite(float(recs[-1]["cost"]))  # written up to the first bad record
  assert all(np.isfinite(float(r["cost"])) for r in recs[:-1])
  assert len(writers.read_records(dirs[0], "train")) == 60


class Crash(RuntimeError):
  pass


def _crash_once_from(first: int):
  """``(build, crashed)``: the toy's build whose batches of step ``first`` on fail once."""
  crashed = []

  def build(c, data=None):
    b = toy.build(c, data)
    batch = b.task.train_batch

    def train_batch(step):
      if step >= first and not crashed:
        crashed.append(step)
        raise Crash(step)
      return batch(step)
    train_batch.steps_per_epoch = batch.steps_per_epoch
    return dataclasses.replace(b, task=dataclasses.replace(b.task, train_batch=train_batch))
  return build, crashed


def test_a_stopped_group_resumes_from_its_checkpoint_to_the_same_records(tmp_path):
  base = _config(log_every_steps=2, eval_every_steps=25, checkpoint_every_steps=15)
  trials = [{"seed": 1, "optimizer.lr": 1e-3}, {"seed": 5, "optimizer.lr": 3e-3}]
  ref = [str(tmp_path / f"ref{i}") for i in range(2)]
  want = trial_batch.fit(toy.build, base, trials, ref, max_chunk=7)

  crashing, _ = _crash_once_from(40)  # the group stops at step 40, once
  dirs, group = [str(tmp_path / f"t{i}") for i in range(2)], str(tmp_path / "group")
  with pytest.raises(Crash):
    trial_batch.fit(crashing, base, trials, dirs, max_chunk=7, group_dir=group)
  assert trial_batch.group_workdirs(group) == [os.path.abspath(d) for d in dirs]
  got = trial_batch.fit(crashing, base, trials, dirs, max_chunk=7, group_dir=group)
  assert [s["resumed_from"] for s in got] == [30, 30]  # saved at 16 and 30 (window-aligned)
  assert not os.path.exists(group)  # removed once every summary is written
  for w, r, a, b in zip(dirs, ref, want, got):
    strip = lambda recs: [{k: v for k, v in x.items() if k != "time"} for x in recs]  # noqa: E731
    assert strip(writers.read_records(w)) == strip(writers.read_records(r))
    assert a["final"] == b["final"] and a["extra"] == b["extra"]


LRS = [1e-4, 3e-4, 1e-3, 3e-3]
HALVING = trial_batch.Halving(rungs=(20, 40), keep=0.5, metric="train/cost", mode="min")


def _costs_at(workdir, step):
  return next(r["cost"] for r in writers.read_records(workdir, "train") if r["step"] == step)


def test_halving_stops_the_worst_trials_at_each_rung(tmp_path):
  base = _config(checkpoint_every_steps=0)
  trials = [{"optimizer.lr": lr} for lr in LRS]
  ref = [str(tmp_path / f"ref{i}") for i in range(4)]
  trial_batch.fit(toy.build, base, trials, ref)  # every trial to the end
  first = sorted(range(4), key=lambda i: _costs_at(ref[i], 20))[:2]
  second = min(first, key=lambda i: _costs_at(ref[i], 40))
  dirs = [str(tmp_path / f"t{i}") for i in range(4)]
  got = trial_batch.fit(toy.build, base, trials, dirs, halving=HALVING)
  want_status = ["completed" if i == second else "stopped" for i in range(4)]
  assert [s["status"] for s in got] == want_status
  for i, s in enumerate(got):
    stop = 60 if i == second else (40 if i in first else 20)
    assert s["steps"] == s["checkpoint_step"] == stop and s.get("stopped_at", 60) == stop
    recs = writers.read_records(dirs[i], "train")
    assert recs[-1]["step"] == stop
    for a, b in zip(recs, writers.read_records(ref[i], "train")):  # the same numbers until then
      assert a["cost"] == pytest.approx(b["cost"], rel=2e-4, abs=1e-6)
    params, step = restore_params(*built(space.apply(base, trials[i])), dirs[i])
    assert step == stop
  # The sweep's summary and curves say where each trial stopped.
  from launch import sweep as sweep_lib
  plan = [sweep_lib.Trial(i, t, d) for i, (t, d) in enumerate(zip(trials, dirs))]
  s = sweep_lib.summarize(str(tmp_path), plan, "train/cost")
  assert [(r["status"], r["steps"]) for r in s["rows"]] == [
      (want_status[i], 60 if i == second else (40 if i in first else 20)) for i in range(4)]
  assert s["best"]["trial"] == f"t{second}"
  assert (tmp_path / "curves.png").stat().st_size > 5000
  assert (tmp_path / "metric_vs_keys.png").stat().st_size > 5000
  assert len(os.listdir(tmp_path / "hparams")) == 4  # TensorBoard HParams: a run per trial


@pytest.mark.parametrize("signal_at", [33, 43])  # 43: taken at 46, a group save step too
def test_sigterm_is_taken_at_a_chunk_end_where_the_trials_save(tmp_path, signal_at):
  base = _config(log_every_steps=2, eval_every_steps=25, checkpoint_every_steps=15)
  trials = [{"seed": 1, "optimizer.lr": 1e-3}, {"seed": 5, "optimizer.lr": 3e-3}]
  ref = [str(tmp_path / f"ref{i}") for i in range(2)]
  want = trial_batch.fit(toy.build, base, trials, ref, max_chunk=7)
  sent = []

  def build(c, data=None):  # SIGTERM once, while the chunk holding that step is prepared
    b = toy.build(c, data)
    batch = b.task.train_batch

    def train_batch(step):
      if step == signal_at and not sent:
        sent.append(step)
        os.kill(os.getpid(), signal.SIGTERM)
      return batch(step)
    train_batch.steps_per_epoch = batch.steps_per_epoch
    return dataclasses.replace(b, task=dataclasses.replace(b.task, train_batch=train_batch))
  dirs, group = [str(tmp_path / f"t{i}") for i in range(2)], str(tmp_path / "group")
  with pytest.raises(errors.Preempted):
    trial_batch.fit(build, base, trials, dirs, max_chunk=7, group_dir=group)
  for i, d in enumerate(dirs):  # saved at the first chunk end after it that closes a window
    s = read_summary(d)
    assert s["status"] == "interrupted" and s["steps"] == s["checkpoint_step"], s
    end = s["steps"]
    assert signal_at < end < 60 and writers.read_records(d, "train")[-1]["step"] == end
    params, step = restore_params(*built(space.apply(base, trials[i])), d)
    assert step == end  # the single-run trainer restores where the group stopped
  assert trial_batch.group_workdirs(group)  # kept for the rerun
  got = trial_batch.fit(build, base, trials, dirs, max_chunk=7, group_dir=group)
  assert [(s["status"], s["resumed_from"]) for s in got] == [("completed", end)] * 2
  strip = lambda recs: [{k: v for k, v in x.items() if k != "time"} for x in recs]  # noqa: E731
  for w, r, a, b in zip(dirs, ref, want, got):
    assert strip(writers.read_records(w)) == strip(writers.read_records(r))
    assert a["final"] == b["final"]


def test_a_killed_halving_group_resumes_to_the_same_outcome(tmp_path):
  base = _config(checkpoint_every_steps=15)
  trials = [{"optimizer.lr": lr} for lr in LRS]
  ref = [str(tmp_path / f"ref{i}") for i in range(4)]
  want = trial_batch.fit(toy.build, base, trials, ref, halving=HALVING,
                           group_dir=str(tmp_path / "ref-group"))

  crashing, _ = _crash_once_from(35)  # after rung 20 and the save at 30
  dirs, group = [str(tmp_path / f"t{i}") for i in range(4)], str(tmp_path / "group")
  with pytest.raises(Crash):
    trial_batch.fit(crashing, base, trials, dirs, halving=HALVING, group_dir=group)
  got = trial_batch.fit(crashing, base, trials, dirs, halving=HALVING, group_dir=group)
  assert [s["status"] for s in got] == [s["status"] for s in want]
  assert sorted(s["resumed_from"] for s in got if s["steps"] > 20) == [30, 30]
  strip = lambda recs: [{k: v for k, v in x.items() if k != "time"} for x in recs]  # noqa: E731
  for w, r, a, b in zip(dirs, ref, want, got):
    assert strip(writers.read_records(w)) == strip(writers.read_records(r))
    assert a["final"] == b["final"] and a["steps"] == b["steps"]


def test_vmapped_trials_compile_with_the_tasks_compiler_options(tmp_path):
  def build(c):
    b = toy.build(c)
    opts = {"xla_cpu_experimental_ynn_fusion_type": "NO_SUCH"}
    return dataclasses.replace(b, task=dataclasses.replace(b.task, compiler_options=opts))
  trials = [{"seed": 1}, {"seed": 2}]
  with pytest.raises(Exception, match="xla_cpu_experimental_ynn_fusion_type"):
    trial_batch.fit(build, _config(), trials, [str(tmp_path / f"t{i}") for i in range(2)])


def test_early_stopping_is_refused_in_vmapped_trials(tmp_path):
  base = space.apply(_config(eval_every_steps=5), {"trainer.early_stop_metric": "mse",
                                                    "trainer.early_stop_patience": 2})
  with pytest.raises(ValueError, match="--halving"):
    trial_batch.fit(toy.build, base, [{"seed": 1}, {"seed": 2}],
                      [str(tmp_path / f"t{i}") for i in range(2)])
