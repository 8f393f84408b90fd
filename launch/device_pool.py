"""Accelerators for the local sweep backend: each running trial leases a device.

A trial waits for a device with a free slot, runs with ``CUDA_VISIBLE_DEVICES``
set to it alone, and gives the slot back when it ends (done, failed, killed),
so no two running trials share a device unless ``trials_per_device > 1`` asks
for it. Each trial's JAX then takes ``0.9 / trials_per_device`` of the
device's memory (``XLA_PYTHON_CLIENT_MEM_FRACTION``; JAX's own default is 75%
for one process), so trials that share a device do not starve each other.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Iterator, Sequence

from lib.errors import ConfigError

MEMORY_SHARE = 0.9  # of a device's memory, split between the trials that share it


def memory_env(share: float) -> dict[str, str]:
  """The environment that gives a trial's JAX ``share`` of a device (1: one trial alone)."""
  return {"XLA_PYTHON_CLIENT_MEM_FRACTION": f"{MEMORY_SHARE * share:.2f}"}


class DevicePool:
  """Device ids (``['0', '1']``) with ``trials_per_device`` slots each."""

  def __init__(self, devices: Sequence[str], trials_per_device: int = 1):
    if trials_per_device < 1:
      raise ConfigError(f"--trials_per_gpu={trials_per_device}: expected at least 1.")
    if len(set(devices)) != len(devices):
      raise ConfigError(f"--gpus={','.join(devices)}: a device is listed twice.")
    self.devices = list(devices)
    self.slots = trials_per_device
    self._running = {d: 0 for d in self.devices}
    self._free = threading.Condition()

  def running(self) -> dict[str, int]:
    """Trials running on each device now."""
    with self._free:
      return dict(self._running)

  def env(self, device: str) -> dict[str, str]:
    """What a trial on ``device`` gets in its environment."""
    return {"CUDA_VISIBLE_DEVICES": device, **memory_env(1 / self.slots)}

  @contextlib.contextmanager
  def lease(self) -> Iterator[dict[str, str]]:
    """Waits for the least-loaded device with a free slot; yields the trial's
    environment additions (``{}`` when the pool has no devices: the CPU)."""
    if not self.devices:
      yield {}
      return
    with self._free:
      self._free.wait_for(lambda: min(self._running.values()) < self.slots)
      device = min(self.devices, key=lambda d: self._running[d])
      self._running[device] += 1
    try:
      yield self.env(device)
    finally:
      with self._free:
        self._running[device] -= 1
        self._free.notify_all()
