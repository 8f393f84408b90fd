"""kill -9 at random moments of a run and of a vmapped sweep, then a clean finish:
nothing lost, nothing doubled."""
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # starts processes: left out of `make test-fast`

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _soak(tmp_path, *flags):
  # A fresh process: the soak forks its runs, which is safe only before JAX starts.
  r = subprocess.run([sys.executable, "-m", "launch.faults", f"--out={tmp_path}", *flags],
                     cwd=REPO, capture_output=True, text=True, timeout=600)
  result = json.loads(r.stdout[r.stdout.index("{"):])
  assert r.returncode == 0 and result["ok"], (result, r.stderr[-2000:])
  assert result["duplicates"] == 0 and result["missing"] == 0
  return result


def test_twenty_random_kills_change_nothing(tmp_path):
  result = _soak(tmp_path, "--kills=20", "--num_steps=2000", "--seed=1")
  assert result["kills"] == 20 and result["records"] == 2020
  assert result["kills_after_progress"] >= 1  # not all of them in start-up (timing-dependent)


def test_kills_of_a_vmapped_sweep_change_nothing(tmp_path):
  result = _soak(tmp_path, "--target=sweep", "--kills=2", "--num_steps=1500", "--min_delay_s=-1",
                 "--seed=2")
  assert result["kills"] == 2 and result["records"] == 8 * 1515
  assert result["kills_after_progress"] >= 1
