"""The train state and what a fresh or finished run's state is."""
from __future__ import annotations

import os
from typing import Any, Optional

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from lib.train import checkpoint, early_stopping, optim
from lib.train.task import Params, Task


class TrainState(flax.struct.PyTreeNode):
  step: jax.Array
  params: Params
  opt_state: optax.OptState
  carry: Any = None  # recurrent state carried across steps (Task.init_carry)


def init_state(task: Task, config: ml_collections.ConfigDict):
  """``(state, tx, schedule, step_key)`` of a fresh run: what ``train`` starts from."""
  init_key, step_key = jax.random.split(jax.random.key(config.seed))
  params = task.init_params(init_key)
  tx, schedule = optim.make_optimizer(config.optimizer, config.trainer.num_steps)
  # Copies: a carry may reuse one buffer twice (LSTM zeros), which donation forbids.
  carry = jax.tree.map(jnp.array, task.init_carry()) if task.init_carry is not None else None
  # Copies: equal hyperparameters (e.g. two 0.0) may share one constant buffer.
  opt_state = jax.tree.map(jnp.array, tx.init(params))
  state = TrainState(step=jnp.asarray(0, jnp.int32), params=params, opt_state=opt_state,
                     carry=carry)
  return state, tx, schedule, step_key


def restore_params(task: Task, config: ml_collections.ConfigDict, workdir: str,
                   step: Optional[int] = None, best: bool = False) -> tuple[Params, int]:
  """Loads a run's parameters (latest checkpoint unless ``step``): ``(params, step)``.
  ``best``: those of its best evaluation (early stopping's ``best/``) instead."""
  state = init_state(task, config)[0]
  folder = early_stopping.BEST_DIR if best else "checkpoints"
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, folder), every=0)
  if ckpt.latest_step() is None:
    raise FileNotFoundError(f"No checkpoint in {ckpt.directory}.")
  state = ckpt.restore(state, step)
  ckpt.close()
  return state.params, int(state.step)
