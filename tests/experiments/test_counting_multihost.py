"""Two CPU processes on localhost (``jax.distributed`` with gloo collectives)
train one data-parallel run and end with the numbers of one process."""
import json
import os
import socket
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # trains or starts processes: left out of `make test-fast`

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAIN = "experiments.counting.main"
COMMON = ["--config=experiments/counting/config.py:rmsprop", "--config.trainer.num_epochs=30",
          "--config.trainer.data_parallel=True", "--config.trainer.checkpoint_every_steps=10",
          "--config.trainer.eval_every_steps=10", "--config.trainer.tensorboard=False",
          "--config.trainer.plot=False"]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _env(devices: int) -> dict:
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
  env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH", "")) if p)
  return env


def _final(workdir, processes: int) -> dict:
  with open(os.path.join(workdir, "summary.json")) as f:
    s = json.load(f)
  assert s["status"] == "completed", s["error"]
  assert (s["processes"], s["devices"]) == (processes, 2)
  return {**s["final"], **s["extra"]}


def test_two_processes_match_one(tmp_path):
  one = str(tmp_path / "one")
  subprocess.run([sys.executable, "-m", MAIN, *COMMON, f"--workdir={one}"], cwd=REPO,
                 env=_env(2), check=True, capture_output=True, timeout=240)
  two = str(tmp_path / "two")
  address = f"127.0.0.1:{_free_port()}"
  procs = [subprocess.Popen(
      [sys.executable, "-m", MAIN, *COMMON, f"--workdir={two}", "--config.trainer.distributed=True",
       f"--config.trainer.coordinator_address={address}", "--config.trainer.num_processes=2",
       f"--config.trainer.process_id={i}"], cwd=REPO, env=_env(1),
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
  outs = [p.communicate(timeout=240)[0] for p in procs]
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-3000:]
  assert "completed after" in outs[0] and "completed after" not in outs[1], outs[1][-3000:]
  assert "step 30/30" in outs[0] and "step 30/30" not in outs[1]  # one progress log
  a, b = _final(one, 1), _final(two, 2)
  assert a.keys() == b.keys()
  for k in a:
    assert b[k] == pytest.approx(a[k], rel=1e-5, abs=1e-6), k


def test_distributed_without_data_parallel_is_refused_before_anything_runs(tmp_path):
  r = subprocess.run([sys.executable, "-m", MAIN, *COMMON, f"--workdir={tmp_path}/run",
                      "--config.trainer.distributed=True", "--config.trainer.data_parallel=False"],
                     cwd=REPO, env=_env(1), capture_output=True, text=True, timeout=240)
  err = r.stderr.strip().splitlines()
  assert r.returncode == 2 and len(err) == 1, r.stderr[-2000:]
  assert err[0].startswith("error: trainer.distributed=True needs trainer.data_parallel=True")
  assert not (tmp_path / "run").exists()
