"""The notes-003 results, with the configs' fixed seeds."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from experiments.counting import config as config_lib, experiment
from lib.runtime import writers

pytestmark = pytest.mark.slow  # trains or starts processes: left out of `make test-fast`

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def summaries(tmp_path_factory):
  root = tmp_path_factory.mktemp("counting")
  return {v: experiment.run(config_lib.get_config(v), str(root / v), verbose=False)
          for v in ("gd", "rmsprop", "rprop")}


def test_rmsprop_finds_both_weights(summaries):
  w = summaries["rmsprop"]["extra"]
  assert abs(w["w_x"] - 1.0) < 0.01 and abs(w["w_rec"] - 1.0) < 0.01, w  # notes: 0.9995, 0.9993


def test_the_associative_scan_finds_both_weights_too(tmp_path):
  """The notes' linear cell is an element-wise linear recurrence: any scan trains it."""
  c = config_lib.get_config("rmsprop")
  c.model.scan = "associative"
  w = experiment.run(c, str(tmp_path), verbose=False)["extra"]
  assert abs(w["w_x"] - 1.0) < 0.01 and abs(w["w_rec"] - 1.0) < 0.01, w


def test_gd_cost_below_notes_bound(summaries):
  s = summaries["gd"]
  assert s["steps"] == 2001
  assert s["final"]["train/cost"] < 0.1, s["final"]  # notes: 0.0663


def test_rprop_finds_both_weights(summaries):
  w = summaries["rprop"]["extra"]
  assert abs(w["w_x"] - 1.0) < 0.01 and abs(w["w_rec"] - 1.0) < 0.01, w


def test_same_seed_same_numbers(tmp_path, summaries):
  again = experiment.run(config_lib.get_config("rmsprop"), str(tmp_path), verbose=False)
  assert again["extra"] == summaries["rmsprop"]["extra"]
  assert again["final"] == summaries["rmsprop"]["final"]


@pytest.mark.parametrize("cell", config_lib.CELL_VARIANTS)
def test_nonlinear_cells_learn_to_count(tmp_path, cell):
  c = config_lib.get_config(cell)
  c.trainer.num_epochs = 1001  # the quick preset
  s = experiment.run(c, str(tmp_path), verbose=False)
  # Predicting the mean count scores the targets' variance, ~2.3.
  assert s["final"]["train/mse"] < 0.25, s["final"]


def test_minibatches_and_epochs_set_the_step_count(tmp_path):
  c = config_lib.get_config("rprop")
  c.data.batch_size, c.trainer.num_epochs = 5, 3
  assert experiment.build(c).config.trainer.num_steps == 12
  assert experiment.run(c, str(tmp_path), verbose=False)["steps"] == 12


def test_unknown_variant_is_a_clear_error():
  with pytest.raises(ValueError, match="expected one of"):
    config_lib.get_config("adamw")


def _main(tmp_path, *flags):
  return subprocess.run(
      [sys.executable, "-m", "experiments.counting.main", f"--workdir={tmp_path}", *flags],
      cwd=REPO, capture_output=True, text=True, timeout=300)


def test_main_prints_like_the_notes_and_writes_the_run(tmp_path):
  r = _main(tmp_path, "--config=experiments/counting/config.py:gd", "--config.trainer.num_epochs=200")
  assert r.returncode == 0, r.stderr
  assert "Initial weights: wx =" in r.stdout and "epoch[  200] : cost =" in r.stdout
  assert "Final weights : wx =" in r.stdout
  assert json.loads((tmp_path / "config.json").read_text())["optimizer"]["lr"] == 1e-5
  assert (tmp_path / "loss_curve.png").exists() and (tmp_path / "checkpoints").exists()


def test_unknown_config_key_fails_listing_valid_keys(tmp_path):
  r = _main(tmp_path, "--config=experiments/counting/config.py:gd", "--config.optimizer.lrr=0.1")
  assert r.returncode != 0
  assert r.returncode == 2 and "config.optimizer has no key 'lrr'" in r.stderr, r.stderr[-2000:]
  assert "Valid keys of config.optimizer: adagrad, adam, adamw, clip_norm" in r.stderr and "Traceback" not in r.stderr
  assert not (tmp_path / "summary.json").exists()


def test_diverging_run_exits_with_a_message(tmp_path):
  r = _main(tmp_path, "--config=experiments/counting/config.py:gd", "--config.optimizer.lr=0.02",
            "--config.trainer.checkpoint_every_steps=5")
  assert r.returncode == 1
  assert "error: Non-finite training metrics at step" in r.stderr
  assert "Traceback" not in r.stderr


def test_sigterm_saves_and_exits_with_one_line(tmp_path):
  p = subprocess.Popen(
      [sys.executable, "-m", "experiments.counting.main", f"--workdir={tmp_path}",
       "--config=experiments/counting/config.py:rprop", "--config.trainer.num_steps=10000000",
       "--config.trainer.checkpoint_every_steps=1000", "--config.trainer.flush_every=10"],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  deadline = time.monotonic() + 120
  while not (tmp_path / "metrics.jsonl").exists() or (tmp_path / "metrics.jsonl").stat().st_size < 1:
    assert time.monotonic() < deadline and p.poll() is None, p.stderr.read() if p.poll() else ""
    time.sleep(0.2)
  p.send_signal(signal.SIGTERM)
  _, err = p.communicate(timeout=120)
  assert p.returncode == 143, err[-2000:]
  assert "interrupted (SIGTERM)" in err and "Traceback" not in err
  s = json.loads((tmp_path / "summary.json").read_text())
  assert s["status"] == "interrupted" and s["steps"] > 0
  # Every step's record up to the interruption is on disk, once (log_every_steps=1).
  train = [r["step"] for r in writers.read_records(str(tmp_path), "train")]
  assert train == list(range(1, s["steps"] + 1))
