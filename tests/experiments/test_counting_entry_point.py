"""A run of an entry point prints rnnlab's lines and no library INFO logs; JAX's
absl flags work on entry points."""
import glob
import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # starts processes: left out of `make test-fast`

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OWN_FILES = {os.path.basename(p) for d in ("lib", "experiments", "launch")
             for p in glob.glob(os.path.join(REPO, d, "**", "*.py"), recursive=True)}
INFO = re.compile(r"^I\d{4} [\d:.]+\s+\d+ ([^:\s]+):\d+\]")


def _counting(tmp_path, *extra):
  cmd = [sys.executable, "-m", "experiments.counting.main",
         "--config=experiments/counting/config.py:rmsprop", "--config.trainer.num_epochs=30",
         "--config.trainer.checkpoint_every_steps=10", f"--workdir={tmp_path}", *extra]
  return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                        env=dict(os.environ, JAX_PLATFORMS="cpu"))


def test_a_run_prints_no_library_info_lines(tmp_path):
  r = _counting(tmp_path)
  assert r.returncode == 0, r.stderr[-2000:]
  lines = (r.stdout + r.stderr).splitlines()
  foreign = [l for l in lines if (m := INFO.match(l)) and m.group(1) not in OWN_FILES]
  assert not foreign, foreign[:5]
  assert not [l for l in lines if "orbax" in l.lower()], "orbax lines in a normal run"
  assert any("step 30/30" in l for l in lines)  # rnnlab's own progress line still shows
  assert any(l.startswith("Final weights") for l in lines)


def test_jax_flags_work_on_entry_points(tmp_path):
  r = _counting(tmp_path, "--jax_debug_nans=True")
  assert r.returncode == 0, r.stderr[-2000:]
  r = _counting(tmp_path / "b", "--jax_no_such_flag=True")
  assert r.returncode != 0


@pytest.mark.parametrize("flag, message", [
    ("--config=experiments/counting/config.py:adamw", "Unknown counting variant 'adamw'"),
    ("--config=experiments/counting/no_such_config.py", "no_such_config.py"),
    ("--config.optimizer.lr=-0.1", "optimizer.lr=-0.1: expected a positive learning rate"),
    ("--config.trainer.num_epochs=0", "trainer.num_epochs=0.0: expected a positive number"),
])
def test_bad_config_values_stop_with_one_line(tmp_path, flag, message):
  r = _counting(tmp_path, flag)
  assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
  assert message in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
  assert not (tmp_path / "summary.json").exists()
