"""launch/ray_tune: the ray backend runs a sweep's trials as Ray Tune trials on a local
instance, with ASHA stopping the hopeless ones."""
import json

import pytest

from launch import sweep as sweep_lib

pytestmark = pytest.mark.slow  # starts Ray and processes: left out of `make test-fast`


def test_ray_tune_backend_runs_an_asha_sweep_with_a_failing_trial(tmp_path, monkeypatch):
  import ray  # CI installs ray[tune] (requirements.txt)

  def four(add, name=""):  # t000 learns fastest; t001 fails; t002, t003 learn slowly
    add.zip({"optimizer.name": ["rmsprop", "no_such_optimizer", "rmsprop", "rmsprop"],
             "optimizer.lr": [0.03, 0.03, 1e-4, 1e-4], "seed": [1, 2, 3, 4]})
  real = sweep_lib._module_of
  monkeypatch.setattr(sweep_lib, "_module_of",
                      lambda p: (lambda m: setattr(m, "sweep", four) or m)(real(p)))
  # Long enough (a few seconds) for reports to reach Tune while the trials train.
  # (Records reach metrics.jsonl, and so Tune, every trainer.flush_every of them.)
  common = {"trainer.num_epochs": 5000, "trainer.log_every_steps": 100,
            "trainer.flush_every": 1, "trainer.eval_every_steps": 0,
            "trainer.checkpoint_every_steps": 0}
  # One CPU: Tune runs the trials in order, so ASHA's rungs (300, 600, 1200 steps) see
  # t000 first.
  options = {"num_cpus": 1, "scheduler": "asha", "grace_steps": 300, "reduction": 2}
  s = sweep_lib.sweep("experiments/counting/config.py:rmsprop", "", str(tmp_path),
                      backend="ray", metric="train/cost", common=common, ray_options=options)
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
