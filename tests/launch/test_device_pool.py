"""The local backend's accelerator pool: a running trial has a device to itself."""
import threading
import time

import pytest

from launch import device_pool, sweep as sweep_lib
from launch.trials import Trial
from lib.errors import ConfigError


class Tracker:
  """Records, per fake device, how many trials run on it at once."""

  def __init__(self):
    self.lock, self.now, self.peak, self.total_peak = threading.Lock(), {}, {}, 0

  def enter(self, device):
    with self.lock:
      self.now[device] = self.now.get(device, 0) + 1
      self.peak[device] = max(self.peak.get(device, 0), self.now[device])
      self.total_peak = max(self.total_peak, sum(self.now.values()))

  def leave(self, device):
    with self.lock:
      self.now[device] -= 1


def test_the_pool_never_gives_one_device_to_two_running_trials():
  pool, seen = device_pool.DevicePool(["3", "7"]), Tracker()

  def trial(i):
    with pool.lease() as env:
      seen.enter(env["CUDA_VISIBLE_DEVICES"])
      time.sleep(0.002 * (i % 5))  # trials of different lengths: leases free unevenly
      seen.leave(env["CUDA_VISIBLE_DEVICES"])

  threads = [threading.Thread(target=trial, args=(i,)) for i in range(24)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert seen.peak == {"3": 1, "7": 1} and seen.total_peak == 2
  assert pool.running() == {"3": 0, "7": 0}


def test_shared_devices_split_memory_and_bad_pools_are_refused():
  pool = device_pool.DevicePool(["0"], trials_per_device=3)
  assert pool.env("0") == {"CUDA_VISIBLE_DEVICES": "0", "XLA_PYTHON_CLIENT_MEM_FRACTION": "0.30"}
  with device_pool.DevicePool([]).lease() as env:
    assert env == {}  # no devices: trials run on the CPU, environment untouched
  with pytest.raises(ConfigError, match="listed twice"):
    device_pool.DevicePool(["0", "0"])
  with pytest.raises(ConfigError, match="trials_per_gpu=0"):
    device_pool.DevicePool(["0"], 0)


def test_run_local_leases_a_device_per_running_trial(tmp_path, monkeypatch):
  """Six trials, --parallel=4 over two fake GPUs: never two on one device at once,
  whatever order they finish in (round-robin at queue time would pair trials 0 and 2)."""
  seen, used = Tracker(), []

  def fake_run(cmd, cwd, env, timeout_s, log_dir, children=None):
    device = env["CUDA_VISIBLE_DEVICES"]
    used.append(device)
    seen.enter(device)
    time.sleep(0.05 if int(log_dir[-1]) % 2 else 0.01)
    seen.leave(device)
    return {"rc": 1, "error": "fake", "wall_s": 0.0}

  monkeypatch.setattr(sweep_lib, "_run_command", fake_run)
  trials = [Trial(i, {"seed": i}, str(tmp_path / f"t{i}")) for i in range(6)]
  records = sweep_lib.run_local("experiments/counting/config.py", trials, parallel=4,
                                gpus=["0", "1"])
  assert len(records) == 6 and sorted(set(used)) == ["0", "1"]
  assert seen.peak == {"0": 1, "1": 1}


def test_a_fractional_ray_gpu_share_sets_the_memory_fraction():
  assert device_pool.memory_env(0.5) == {"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.45"}
  assert device_pool.memory_env(1.0) == {"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.90"}
