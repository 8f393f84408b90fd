"""launch/sweep on tiny counting sweeps: summary, failures, resume, signals, the backends."""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from launch import sweep as sweep_lib, trials as trials_lib, vmap_backend
from lib.errors import ConfigError
from lib.runtime import cli, writers

pytestmark = pytest.mark.slow  # trains or starts processes: left out of `make test-fast`

CONFIG = "experiments/counting/config.py:rprop"


@pytest.fixture
def tiny(monkeypatch):
  """Three trials of 30 epochs; the middle one names an optimizer that does not exist."""
  def tiny_sweep(add, name=""):
    add.zip({"optimizer.name": ["rprop", "no_such_optimizer", "rprop"], "seed": [1, 2, 3]})
    add.grid("trainer.num_epochs", [30])
  real = vmap_backend._module_of

  def module_of(path):
    m = real(path)
    m.sweep = tiny_sweep
    return m
  monkeypatch.setattr(vmap_backend, "_module_of", module_of)
  # Subprocesses import the real config module: pass the overrides explicitly instead.
  return tiny_sweep


def test_failing_trial_is_recorded_and_a_rerun_finishes_only_the_missing(tmp_path, tiny):
  s = sweep_lib.sweep(CONFIG, "", str(tmp_path), parallel=2, metric="train/cost")
  status = [r["status"] for r in s["rows"]]
  assert status == ["completed", "failed", "completed"]
  assert "no_such_optimizer" in s["rows"][1]["error"]
  assert s["best"]["trial"] in ("t000", "t002")
  md = (tmp_path / "summary.md").read_text()
  assert "Best (min train/cost)" in md and "failed" in md
  with open(tmp_path / "summary.csv") as f:
    rows = list(csv.DictReader(f))
  assert [r["status"] for r in rows] == status and rows[0]["overrides"].startswith("optimizer.name")
  assert (tmp_path / "curves.png").stat().st_size > 5000
  plan = json.loads((tmp_path / "sweep.json").read_text())
  assert [t["overrides"]["seed"] for t in plan["trials"]] == [1, 2, 3]
  # Trial 2 "killed halfway": its summary is gone, its checkpoints stay.
  os.remove(tmp_path / "t002" / "summary.json")
  s = sweep_lib.sweep(CONFIG, "", str(tmp_path), parallel=2, metric="train/cost")
  attempts = [json.loads((tmp_path / f"t00{i}" / "trial.json").read_text())["attempts"]
              for i in range(3)]
  assert attempts == [1, 2, 2]  # t000 skipped; the failed and the interrupted ones ran again
  assert [r["status"] for r in s["rows"]] == ["completed", "failed", "completed"]
  resumed = json.loads((tmp_path / "t002" / "summary.json").read_text())["resumed_from"]
  assert resumed == 30  # picked up its last checkpoint instead of starting over


def test_a_sweep_with_failed_trials_exits_non_zero(tmp_path):
  r = subprocess.run([sys.executable, "-m", "launch.sweep", "--config=" + CONFIG,
                      f"--out={tmp_path}", "--grid=optimizer.name=nope,nope_either",
                      "--set=trainer.num_epochs=2"],
                     cwd=sweep_lib.REPO, capture_output=True, text=True)
  assert r.returncode == 1, r.stderr[-2000:]
  assert "2 of 2 trial(s) failed" in r.stdout


def test_plan_rejects_unknown_keys_before_running(tmp_path, monkeypatch):
  def bad(add, name=""):
    add.grid("optimizer.lrr", [0.1])
  real = vmap_backend._module_of
  monkeypatch.setattr(vmap_backend, "_module_of", lambda p: (lambda m: setattr(m, "sweep", bad) or m)(real(p)))
  with pytest.raises(KeyError, match="lrr"):
    sweep_lib.sweep(CONFIG, "", str(tmp_path))
  assert not any(p.name.startswith("t0") for p in tmp_path.iterdir())


def test_main_module_of_a_config_path(tmp_path):
  """An experiment of the checkout runs by its own main.py, any other by launch.run."""
  assert sweep_lib.main_module("experiments/word2vec/config.py") == "experiments.word2vec.main"
  (tmp_path / "config.py").write_text("")
  assert sweep_lib.main_module(str(tmp_path / "config.py")) == "launch.run"
  with pytest.raises(ValueError, match=r"--config=nowhere/config.py: no such file"):
    sweep_lib.main_module("nowhere/config.py")


def test_vmap_backend_refuses_a_key_neither_tunable_nor_structural(tmp_path):
  from lib.errors import ConfigError
  with pytest.raises(ConfigError, match=r"cannot vary data.eval_samples\. Tunable \(one "
                     r"program\): seed, optimizer.lr, .*Structural .*model.hidden"):
    sweep_lib.sweep(CONFIG, "", str(tmp_path), backend="vmap",
                    grid=["data.eval_samples=10,20"])
  assert not tmp_path.exists() or not any(tmp_path.iterdir())  # refused before anything ran
  r = subprocess.run([sys.executable, "-m", "launch.sweep", "--config=" + CONFIG,
                      f"--out={tmp_path}/cli", "--backend=vmap", "--grid=optimizer.lrr=1,2"],
                     cwd=sweep_lib.REPO, capture_output=True, text=True)
  err = r.stderr.strip().splitlines()  # the command line: one line, exit 2
  assert r.returncode == 2 and len(err) == 1 and "lrr" in err[0] and "valid:" in err[0], err


def test_trials_per_block_takes_a_count_or_auto():
  from lib.errors import ConfigError
  assert sweep_lib._trials_per_block("auto") == -1 and sweep_lib._trials_per_block("4") == 4
  with pytest.raises(ConfigError, match="expected a count .* or 'auto'"):
    sweep_lib._trials_per_block("fast")


def test_a_structural_key_splits_a_vmap_sweep_into_groups_merged_in_one_summary(tmp_path, caplog):
  from experiments.counting import config as counting_config, experiment
  caplog.set_level("INFO")
  from lib.sweeps import space
  grid = ["optimizer.name=rmsprop,adam", "optimizer.lr=0.01,0.03"]
  common = {"trainer.num_epochs": 40}
  s = sweep_lib.sweep("experiments/counting/config.py:rmsprop", "", str(tmp_path), backend="vmap",
                      metric="train/cost", common=common, grid=grid)
  assert [r["status"] for r in s["rows"]] == ["completed"] * 4
  assert [r["overrides"] for r in s["rows"]][1:3] == ["optimizer.name=rmsprop,optimizer.lr=0.03",
                                                      "optimizer.name=adam,optimizer.lr=0.01"]
  assert not [p for p in os.listdir(tmp_path) if p.startswith("vmap-group")]  # both groups done
  progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("vmap: ")]
  assert any(m.startswith("vmap: 2 trial(s) training | step 40/40 (100.0%)") for m in progress), progress
  for r in s["rows"]:  # each vmapped trial draws what a single run does
    assert (tmp_path / r["trial"] / "loss_curve.png").stat().st_size > 5000
  trial = {"optimizer.name": "adam", "optimizer.lr": 0.03}  # the second group's second trial
  base = space.apply(counting_config.get_config("rmsprop"), common)
  alone = experiment.run(space.apply(base, trial), str(tmp_path / "alone"), verbose=False)
  assert s["rows"][3]["train/cost"] == pytest.approx(alone["final"]["train/cost"], rel=1e-4)


def test_a_trial_whose_values_changed_is_set_aside_and_run_again(tmp_path, tiny):
  trials = sweep_lib.plan(CONFIG, "", str(tmp_path), {"optimizer.lr": 1e-3})
  for t in trials:
    trials_lib.record(t, status="completed")
    (tmp_path / os.path.basename(t.workdir) / "summary.json").write_text('{"status": "completed"}')
  assert sweep_lib.set_aside_changed(trials) == []  # same values: kept, reported done
  assert all(sweep_lib.is_done(t) for t in trials)
  changed = sweep_lib.plan(CONFIG, "", str(tmp_path), {"optimizer.lr": 2e-3})
  moved = sweep_lib.set_aside_changed(changed)
  assert moved == [t.workdir + ".replaced-1" for t in trials]
  assert not any(sweep_lib.is_done(t) for t in changed)  # they run again
  assert json.loads((tmp_path / "t000.replaced-1" / "trial.json").read_text())["set"] == {
      "optimizer.lr": 1e-3}


def test_a_smaller_grid_moves_the_unlisted_trial_folders_aside(tmp_path, capsys):
  for t in sweep_lib.plan(CONFIG, "", str(tmp_path), grid=["optimizer.lr=0.1,0.2,0.3"]):
    trials_lib.record(t, status="completed")
  again = sweep_lib.plan(CONFIG, "", str(tmp_path), grid=["optimizer.lr=0.1"])
  moved = trials_lib.set_aside_changed(again)
  assert sorted(os.listdir(tmp_path)) == ["t000", "t001.replaced-1", "t002.replaced-1"]
  assert len(moved) == 2 and "2 trial folder(s) of an earlier plan" in capsys.readouterr().err


def test_a_mistyped_metric_says_what_the_trials_report(tmp_path, tiny, capsys):
  trials = sweep_lib.plan(CONFIG, "", str(tmp_path))
  for t in trials:
    trials_lib.record(t, status="completed")
    (tmp_path / os.path.basename(t.workdir) / "summary.json").write_text(
        json.dumps({"status": "completed", "final": {"train/cost": 0.5}}))
  assert sweep_lib.summarize(str(tmp_path), trials, "train/costt")["best"] is None
  assert "no trial reports 'train/costt'; the trials report train/cost" in (
      tmp_path / "summary.md").read_text()
  assert "--metric=train/costt: no trial reports it" in capsys.readouterr().err


def test_seeds_are_aggregated_per_configuration_and_the_best_is_picked_by_the_mean(tmp_path):
  """lr 0.1 has the best single trial, lr 0.01 the best mean over its two seeds."""
  finals = {(0.01, 0): 0.30, (0.01, 1): 0.32, (0.1, 0): 0.10, (0.1, 1): 0.90}
  trials = [trials_lib.Trial(i, {"optimizer.lr": lr, "seed": seed}, str(tmp_path / f"t00{i}"))
            for i, (lr, seed) in enumerate(finals)]
  for t, value in zip(trials, finals.values()):
    os.makedirs(t.workdir)
    trials_lib.record(t, status="completed")
    (tmp_path / os.path.basename(t.workdir) / "summary.json").write_text(
        json.dumps({"status": "completed", "steps": 5, "final": {"eval/mse": value}}))
  s = sweep_lib.summarize(str(tmp_path), trials, "eval/mse")
  assert s["best"]["trial"] == "t002"
  assert s["best_config"]["config"] == "optimizer.lr=0.01"
  assert s["best_config"]["mean"] == pytest.approx(0.31)
  assert s["best_config"]["std"] == pytest.approx(0.01)
  assert [(c["config"], c["completed"]) for c in s["configs"]] == [
      ("optimizer.lr=0.01", 2), ("optimizer.lr=0.1", 2)]
  md = (tmp_path / "summary.md").read_text()
  assert "Best configuration (min mean eval/mse): optimizer.lr=0.01 = 0.31 ± 0.01 (2 seeds)" in md
  with open(tmp_path / "summary.csv") as f:
    rows = list(csv.DictReader(f))
  assert [float(r["eval/mse mean"]) for r in rows] == pytest.approx([0.31, 0.31, 0.5, 0.5])
  assert (tmp_path / "metric_vs_keys.png").stat().st_size > 5000


def _wait_for(predicate, timeout_s=120.0, what=""):
  deadline = time.monotonic() + timeout_s
  while not predicate():
    if time.monotonic() > deadline:
      pytest.fail(f"timed out waiting for {what}")
    time.sleep(0.2)


def _trial(tmp_path, i, name="trial.json"):
  return sweep_lib.read_json(str(tmp_path / f"t00{i}" / name)) or {}


def test_stopping_a_sweep_stops_its_trials_which_save_and_resume(tmp_path):
  """SIGTERM to the sweep: its two running trials save, say 'interrupted', and no
  other trial starts. kill -9 of the sweep: its trials still get SIGTERM and save."""
  cmd = [sys.executable, "-m", "launch.sweep", f"--config={CONFIG}", "--sweep=lr",
         f"--out={tmp_path}", "--parallel=2", "--metric=train/cost",
         "--set=trainer.num_steps=1000000,trainer.log_every_steps=10,trainer.flush_every=1"]
  def training(i):
    return os.path.exists(tmp_path / f"t00{i}" / "metrics.jsonl") and os.path.getsize(
        tmp_path / f"t00{i}" / "metrics.jsonl") > 0
  sweep = subprocess.Popen(cmd, cwd=sweep_lib.REPO, stderr=subprocess.PIPE, text=True)
  _wait_for(lambda: training(0) and training(1), what="two trials training")
  sweep.send_signal(signal.SIGTERM)
  _, err = sweep.communicate(timeout=120)
  assert sweep.returncode == cli.EXIT_SIGTERM, err
  assert "interrupted (SIGTERM)" in err and "Traceback" not in err, err
  for i in (0, 1):
    assert _trial(tmp_path, i)["status"] == "interrupted"
    assert _trial(tmp_path, i, "summary.json")["status"] == "interrupted"
  assert not (tmp_path / "t002").exists() and not (tmp_path / "t003").exists()
  assert (tmp_path / "summary.md").read_text().count("| interrupted |") == 2

  saved = [_trial(tmp_path, i, "summary.json")["steps"] for i in (0, 1)]
  sweep = subprocess.Popen(cmd, cwd=sweep_lib.REPO, stderr=subprocess.DEVNULL)
  _wait_for(lambda: all(writers.read_records(str(tmp_path / f"t00{i}"))[-1]["step"] > saved[i]
                        for i in (0, 1)), what="the rerun's trials to train on")
  sweep.kill()
  sweep.wait()
  _wait_for(lambda: all(_trial(tmp_path, i, "summary.json").get("resumed_from") == saved[i]
                        for i in (0, 1)), what="the orphaned trials to save")
  assert all(_trial(tmp_path, i, "summary.json")["status"] == "interrupted" for i in (0, 1))


def test_a_uri_out_is_refused_before_anything_runs(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  with pytest.raises(ConfigError, match=r"--out=gs://b/s: a sweep keeps its trials in a local"):
    sweep_lib.sweep(CONFIG, "", "gs://b/s")
  assert not os.path.exists(tmp_path / "gs:")
