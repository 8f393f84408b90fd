"""launch/ray_tune: the ray backend runs a sweep's trials as Ray Tune trials on a local
instance, with ASHA stopping the hopeless ones."""
import json
import os

import pytest

from launch import sweep as sweep_lib, vmap_backend
from lib.runtime import writers

pytestmark = pytest.mark.slow  # starts Ray and processes: left out of `make test-fast`

# Long enough (a few seconds) for reports to reach Tune while the trials train.
# (Records reach metrics.jsonl, and so Tune, every trainer.flush_every of them.)
COMMON = {"trainer.num_epochs": 5000, "trainer.log_every_steps": 100, "trainer.flush_every": 1,
          "trainer.eval_every_steps": 0, "trainer.checkpoint_every_steps": 0}
# One CPU: Tune runs its trials in order, so ASHA's rungs (300, 600, 1200 steps) see the
# first one first.
ASHA = {"num_cpus": 1, "scheduler": "asha", "grace_steps": 300, "reduction": 2}


def _sweep(tmp_path, monkeypatch, trials: dict, common: dict = {}, **options) -> dict:
  """The counting sweep of ``trials`` (``add.zip``'s columns) on the ray backend under ASHA."""
  real = vmap_backend._module_of
  monkeypatch.setattr(vmap_backend, "_module_of", lambda p: (
      lambda m: setattr(m, "sweep", lambda add, name="": add.zip(trials)) or m)(real(p)))
  return sweep_lib.sweep("experiments/counting/config.py:rmsprop", "", str(tmp_path),
                         backend="ray", metric="train/cost",
                         common={**COMMON, **common},
                         ray_options={**ASHA, **options})


def test_ray_tune_backend_runs_an_asha_sweep_with_a_failing_trial(tmp_path, monkeypatch):
  import ray  # CI installs ray[tune] (requirements.txt)

  # t000 learns fastest; t001 fails; t002, t003 learn slowly
  s = _sweep(tmp_path, monkeypatch, {
      "optimizer.name": ["rmsprop", "no_such_optimizer", "rmsprop", "rmsprop"],
      "optimizer.lr": [0.03, 0.03, 1e-4, 1e-4], "seed": [1, 2, 3, 4]})
  status = [r["status"] for r in s["rows"]]
  assert status == ["completed", "failed", "stopped", "stopped"], s["rows"]
  assert "no_such_optimizer" in s["rows"][1]["error"]
  assert not ray.is_initialized()  # the instance it started is shut down
  for i in (2, 3):  # stopped at a rung: saved there, and the summary says so
    summary = json.loads((tmp_path / f"t00{i}" / "summary.json").read_text())
    assert summary["status"] == "stopped" and summary["stopped_by"] == "asha"
    assert summary["checkpoint_step"] == summary["steps"] < 5000
  assert s["best"]["trial"] == "t000"
  assert (tmp_path / "tune" / "tuner.pkl").exists()  # the Tune experiment a rerun restores


def test_ray_tune_runs_vmapped_groups_as_tune_trials(tmp_path, monkeypatch):
  import ray

  # Groups by the structural keys: t000-t001 | t002 (fails) | t003-t004 (slow). A vmapped
  # group of the notes' 20 sequences runs its 5,000 steps in about a second, faster than
  # Tune takes its reports: batches of 2,000 sequences keep it training at Tune's pace.
  s = _sweep(tmp_path, monkeypatch, {
      "model.unroll": [1, 1, 1, 2, 2],
      "optimizer.name": ["rmsprop", "rmsprop", "no_such_optimizer", "rmsprop", "rmsprop"],
      "optimizer.lr": [0.03, 0.01, 0.03, 1e-4, 2e-4], "seed": [1, 2, 3, 4, 5]},
      common={"data.num_samples": 2_000, "data.batch_size": 2_000}, unit="group")
  status = [r["status"] for r in s["rows"]]
  assert status == ["completed", "completed", "failed", "stopped", "stopped"], s["rows"]
  assert "no_such_optimizer" in s["rows"][2]["error"]
  assert not ray.is_initialized()
  for i in (0, 1):  # trained in one vmapped program
    summary = json.loads((tmp_path / f"t00{i}" / "summary.json").read_text())
    assert summary["vmapped"] and summary["steps"] == 5000
  stopped = [json.loads((tmp_path / f"t00{i}" / "summary.json").read_text()) for i in (3, 4)]
  for summary in stopped:  # the group stopped at a rung: its trials saved there, at one step
    assert summary["status"] == "stopped" and summary["stopped_by"] == "asha"
    assert summary["checkpoint_step"] == summary["steps"] == stopped[0]["steps"] < 5000
  # ASHA stopped the worse group: at its first rung (300 steps) the first group was ahead.
  at_rung = {i: next(r["cost"] for r in writers.read_records(str(tmp_path / f"t00{i}"), "train")
                     if r["step"] == 300) for i in (0, 1, 3, 4)}
  assert min(at_rung[3], at_rung[4]) > min(at_rung[0], at_rung[1])
  assert s["best"]["trial"] in ("t000", "t001")
  plan = json.loads((tmp_path / "tune-plan.json").read_text())
  assert plan["unit"] == "group"
  assert (tmp_path / "tune" / "tuner.pkl").exists()
  # Finished groups (completed, or stopped by ASHA) leave no group checkpoint to resume.
  assert not [n for n in os.listdir(tmp_path) if n.startswith(vmap_backend.VMAP_GROUP)]


@pytest.mark.parametrize("mode", ["min", "max"])
def test_a_group_reports_its_best_trial_at_steps_every_training_trial_reached(tmp_path, mode,
                                                                             monkeypatch):
  from launch import ray_tune, trials as trials_lib
  monkeypatch.setattr(ray_tune.GroupRun, "_spawn", lambda self, *a: None)
  trials = [trials_lib.Trial(i, {}, str(tmp_path / f"t{i}")) for i in range(3)]

  def write(i, step, cost):
    os.makedirs(trials[i].workdir, exist_ok=True)
    with open(os.path.join(trials[i].workdir, "metrics.jsonl"), "a") as f:
      f.write(json.dumps({"step": step, "split": "train", "time": 0.0, "cost": cost}) + "\n")
  run = ray_tune.GroupRun(str(tmp_path), 0, trials, "train/cost", mode, None)
  write(0, 100, 3.0), write(0, 200, 1.0), write(1, 100, 2.0), write(2, 100, float("nan"))
  run._read(final=False)  # t2 diverged at 100; t1 has not reached 200
  best = min if mode == "min" else max
  assert run.queue == [{"step": 100, "train/cost": best(3.0, 2.0), "trials": 2,
                        "best_trial": "t1" if mode == "min" else "t0"}]
  write(1, 200, 5.0)
  run._read(final=False)
  assert run.queue[1:] == [{"step": 200, "train/cost": best(1.0, 5.0), "trials": 2,
                            "best_trial": "t0" if mode == "min" else "t1"}]
