"""lib.train.loop: one core for a single run and a vmapped group of trials."""
import numpy as np
import pytest

from tests.lib import toy
from lib.runtime import writers
from lib.sweeps import space, trial_batch
from lib.train import trainer

pytestmark = pytest.mark.slow  # trains: left out of `make test-fast`


def _config(**trainer_fields):
  c = space.apply(toy.get_config("rmsprop"), {"trainer.num_epochs": 30})
  c.unlock()
  c.trainer.update({"log_every_steps": 4, "eval_every_steps": 10, "checkpoint_every_steps": 10,
                    **trainer_fields})
  c.lock()
  return c


def _strip(records):
  return [{k: v for k, v in r.items() if k != "time"} for r in records]


def test_a_single_run_and_a_group_of_one_write_the_same_records(tmp_path):
  c = _config()
  b = toy.build(c)
  alone = trainer.fit(b.task, b.config, str(tmp_path / "alone"))
  (grouped,) = trial_batch.fit(toy.build, c, [{}], [str(tmp_path / "group")], max_chunk=7)
  ours, theirs = (_strip(writers.read_records(str(tmp_path / d))) for d in ("alone", "group"))
  assert [(r["step"], r["split"]) for r in ours] == [(r["step"], r["split"]) for r in theirs]
  for a, g in zip(ours, theirs):
    for k in set(a) - {"step", "split"}:
      assert a[k] == pytest.approx(g[k], rel=2e-4, abs=1e-6), (a["step"], k)
  assert (alone["status"], alone["steps"]) == (grouped["status"], grouped["steps"]) == (
      "completed", 30)
  assert alone["checkpoint_step"] == grouped["checkpoint_step"] == 30


def test_a_diverged_trial_ends_at_its_first_bad_record_and_leaves_the_group(tmp_path):
  c = _config(log_every_steps=1)
  trials = [{"optimizer.lr": 1e-3}, {"optimizer.lr": 1e4}, {"optimizer.lr": 3e-3}]
  dirs = [str(tmp_path / f"t{i}") for i in range(3)]
  ok, bad, ok2 = trial_batch.fit(toy.build, c, trials, dirs, max_chunk=5)
  recs = writers.read_records(dirs[1], "train")
  assert not np.isfinite(float(recs[-1]["cost"])) and bad["steps"] == recs[-1]["step"] < 30
  assert bad["status"] == "diverged" and f"at step {bad['steps']}" in bad["error"]
  assert bad["checkpoint_step"] is None and "re-run starts over" in bad["error"]
  for s, d in ((ok, dirs[0]), (ok2, dirs[2])):
    assert (s["status"], s["steps"], s["checkpoint_step"]) == ("completed", 30, 30)
    assert [r["step"] for r in writers.read_records(d, "train")] == list(range(1, 31))
