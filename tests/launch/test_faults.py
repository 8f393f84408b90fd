"""kill -9 at random moments of a run, then a clean finish: nothing lost, nothing doubled."""
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # starts processes: left out of `make test-fast`

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_twenty_random_kills_change_nothing(tmp_path):
  # A fresh process: the soak forks its runs, which is safe only before JAX starts.
  r = subprocess.run([sys.executable, "-m", "launch.faults", f"--out={tmp_path}", "--kills=20",
                      "--num_steps=400", "--max_delay_s=2.5", "--seed=1"],
                     cwd=REPO, capture_output=True, text=True, timeout=600)
  result = json.loads(r.stdout[r.stdout.index("{"):])
  assert r.returncode == 0 and result["ok"], (result, r.stderr[-2000:])
  assert result["kills"] >= 15  # most attempts were killed, not finished first
  assert result["duplicates"] == 0 and result["missing"] == 0
