"""Data parallelism over a device mesh, on one host or many.

``trainer.data_parallel=True`` puts every device (of every host) on one
``data`` mesh axis: each batch array whose leading axis divides evenly is split
along it, everything else (parameters, optimizer state, scalars) is replicated,
and ``jax.jit`` partitions the step (GSPMD): the gradient all-reduce is
inserted by XLA. With several hosts, ``trainer.distributed=True`` makes the
entry point call :func:`initialize_distributed` before any other JAX call: it
reads SLURM's and Cloud TPU's environment, or the explicit
``trainer.coordinator_address`` / ``num_processes`` / ``process_id`` (two CPU
processes on localhost, as the tests run it). Every host computes the same
step-indexed batch and keeps the rows its devices own.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from lib.errors import ConfigError

_INITIALIZED = False


def check_distributed(trainer_config: Any) -> None:
  """A multi-host run needs data-parallel placement (the batch sharded over every
  process's devices, the state replicated): checkpoints are written from global arrays."""
  if trainer_config.get("distributed") and not trainer_config.get("data_parallel"):
    raise ConfigError("trainer.distributed=True needs trainer.data_parallel=True: each process "
                      "trains on its shard of the batch and the state is one global array.")


def initialize_distributed(trainer_config: Optional[Any] = None) -> None:
  """``jax.distributed.initialize`` once per process (multi-host runs).

  ``trainer_config`` fields ``coordinator_address``, ``num_processes`` and
  ``process_id`` are passed when set (else JAX detects SLURM / Cloud TPU);
  CPU processes exchange collectives through gloo.
  """
  global _INITIALIZED
  if _INITIALIZED:
    return
  tc = trainer_config or {}
  kwargs = {}
  if tc.get("coordinator_address"):
    kwargs = dict(coordinator_address=tc["coordinator_address"],
                  num_processes=tc["num_processes"], process_id=tc["process_id"])
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(**kwargs)
  _INITIALIZED = True


class DataParallel:
  """A 1-D ``data`` mesh over ``devices`` (default: all of them)."""

  def __init__(self, devices: Optional[Sequence[jax.Device]] = None):
    self.devices = list(devices or jax.devices())
    self.mesh = Mesh(np.array(self.devices), ("data",))
    self.n = len(self.devices)
    self.split = NamedSharding(self.mesh, P("data"))
    self.whole = NamedSharding(self.mesh, P())

  def _put(self, x, sharding):
    x = np.asarray(x) if not isinstance(x, jax.Array) else x
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: np.asarray(x[idx]))

  def shard(self, batch: Any) -> Any:
    """Splits arrays along their leading axis when it divides by the device count."""
    def put(x):
      shape = np.shape(x)
      ok = len(shape) >= 1 and shape[0] % self.n == 0 and shape[0] > 0
      return self._put(x, self.split if ok else self.whole)
    return jax.tree.map(put, batch)

  def replicate(self, tree: Any) -> Any:
    return jax.tree.map(lambda x: self._put(x, self.whole) if hasattr(x, "shape") else x, tree)
