"""lib.train.early_stopping through the trainer: where a run stops, what it keeps, resume."""
import numpy as np
import pytest

from tests import interrupt
from tests.lib import toy
from lib.errors import ConfigError
from lib.runtime import writers
from lib.sweeps import space
from lib.train import early_stopping, trainer
from lib.train.state import restore_params


def _config(**trainer_fields):
  """Evaluations every 5 steps of 60; the held-out mse falls, so watching its maximum
  the first evaluation stays the best and the run stops ``patience`` evaluations later."""
  fields = {"trainer.num_epochs": 60, "trainer.eval_every_steps": 5,
            "trainer.checkpoint_every_steps": 4, "trainer.log_every_steps": 1,
            "trainer.flush_every": 3, "trainer.early_stop_metric": "mse",
            "trainer.early_stop_mode": "max", "trainer.early_stop_patience": 3}
  return space.apply(toy.get_config("rmsprop"), {**fields, **trainer_fields})


def _train(c, workdir):
  b = toy.build(c)
  return trainer.fit(b.task, b.config, str(workdir))


def test_the_tracker_counts_evaluations_since_the_best():
  es = early_stopping.EarlyStopping("chrf", "max", patience=2, min_delta=0.5)
  assert es.update(10, {"chrf": 20.0}) and es.best_step == 10
  assert not es.update(20, {"chrf": 20.4})  # not more than min_delta
  assert es.update(30, {"chrf": 21.0}) and es.since_best == 0
  assert not es.update(40, {"chrf": 19.0}) and not es.done
  assert not es.update(50, {"chrf": 21.0}) and es.done
  assert es.summary(50) == {"metric": "chrf", "mode": "max", "patience": 2, "best_step": 30,
                            "best_value": 21.0, "stopped_at": 50}
  low = early_stopping.EarlyStopping("loss", "min", patience=1)
  assert low.update(1, {"loss": float("nan")}) is False  # a NaN is never a best
  assert low.update(2, {"loss": 3.0}) and not low.update(3, {"loss": 3.0}) and low.done


@pytest.mark.slow
def test_a_run_stops_at_patience_and_keeps_its_best_state(tmp_path):
  s = _train(_config(), tmp_path / "es")
  assert s["status"] == "completed" and s["steps"] == 20
  assert s["early_stop"]["best_step"] == 5 and s["early_stop"]["stopped_at"] == 20
  evals = writers.read_records(str(tmp_path / "es"), "eval")
  assert [r["step"] for r in evals] == [5, 10, 15, 20]  # no second evaluation at the stop
  assert s["early_stop"]["best_value"] == evals[0]["mse"]
  assert writers.read_records(str(tmp_path / "es"), "train")[-1]["step"] == 20
  # best/ holds the state of step 5: the parameters a plain run has at step 5.
  b = toy.build(_config())
  best, step = restore_params(b.task, b.config, str(tmp_path / "es"), best=True)
  plain = _config(**{"trainer.early_stop_patience": 0, "trainer.checkpoint_every_steps": 5,
                     "trainer.max_checkpoints": 20})
  _train(plain, tmp_path / "plain")
  at5, _ = restore_params(b.task, b.config, str(tmp_path / "plain"), step=5)
  assert step == 5
  for k in best:
    np.testing.assert_array_equal(np.asarray(best[k]), np.asarray(at5[k]))
  # Re-entered, a stopped run stays stopped: nothing trained, nothing written again.
  before = writers.read_records(str(tmp_path / "es"))
  again = _train(_config(), tmp_path / "es")
  assert again["steps"] == 20 and again["resumed_from"] == 20
  assert again["final"] == s["final"] and again["early_stop"] == s["early_stop"]
  assert writers.read_records(str(tmp_path / "es")) == before


@pytest.mark.slow
def test_a_run_cut_between_its_best_and_its_stop_resumes_to_the_same_stop(tmp_path, monkeypatch):
  ref = _train(_config(), tmp_path / "ref")
  b = toy.build(_config())
  cut = interrupt.cut_then_resume(monkeypatch, type(b.task.train_batch), "__call__", 13,
                                  lambda: _train(_config(), tmp_path / "cut"))
  assert cut["resumed_from"] == 13 and cut["early_stop"] == ref["early_stop"]
  assert cut["final"] == ref["final"]
  strip = lambda rs: [{k: v for k, v in r.items() if k != "time"} for r in rs]
  assert strip(writers.read_records(str(tmp_path / "cut"))) == \
      strip(writers.read_records(str(tmp_path / "ref")))


@pytest.mark.slow
def test_bad_early_stopping_settings_are_one_line(tmp_path):
  with pytest.raises(ConfigError, match="the evaluators give \\['mse'\\]"):
    _train(_config(**{"trainer.early_stop_metric": "chrf"}), tmp_path / "a")
  with pytest.raises(ConfigError, match="early_stop_metric is empty"):
    _train(_config(**{"trainer.early_stop_metric": ""}), tmp_path / "b")
  with pytest.raises(ConfigError, match="periodic evaluations"):
    _train(_config(**{"trainer.eval_every_steps": 0}), tmp_path / "c")
  with pytest.raises(ConfigError, match="'max' or 'min'"):
    _train(_config(**{"trainer.early_stop_mode": "up"}), tmp_path / "d")
