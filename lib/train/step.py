"""The pure train step every run jits: value and gradient, the optax update, metrics."""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

import jax
import jax.numpy as jnp
import optax

from lib.train import metrics as metrics_lib, optim
from lib.train.state import TrainState
from lib.train.task import Batch, LossFn, Task


def make_train_step(loss_fn: LossFn, tx: optax.GradientTransformation,
                    schedule: Optional[Callable] = None,
                    init_carry: Optional[Callable[[], Any]] = None):
  """A pure ``train_step(state, batch, rng, hp) -> (state, metrics)``.

  ``hp`` (the task's tunable values, :attr:`Task.hparams`; traced when trials are
  vmapped) is passed on to ``loss_fn`` as its last argument when it is not empty.
  With ``init_carry`` the loss is stateful (see :class:`Task`).
  """
  tx = optax.with_extra_args_support(tx)

  def train_step(state: TrainState, batch: Batch, rng: jax.Array, hp: Optional[Mapping] = None):
    carry, extra = state.carry, ((hp,) if hp else ())
    if init_carry is None:
      (objective, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
          state.params, batch, rng, *extra)
    else:
      if "reset" in batch:  # an epoch's first window starts from the initial state
        carry = jax.tree.map(lambda c, z: jnp.where(batch["reset"], z, c), carry, init_carry())
      (objective, (metrics, carry)), grads = jax.value_and_grad(
          lambda p: loss_fn(p, batch, rng, carry, *extra), has_aux=True)(state.params)
      carry = jax.lax.stop_gradient(carry)
    # ``value`` feeds reduce-on-plateau when configured; other transforms ignore it.
    updates, opt_state = tx.update(grads, state.opt_state, state.params, value=objective)
    params = optax.apply_updates(state.params, updates)
    metrics = metrics_lib.as_averages(metrics)
    metrics.setdefault("loss", metrics_lib.Average.of(objective))
    metrics["grad_norm"] = metrics_lib.Average.of(optax.tree.norm(grads))
    if schedule is not None:
      metrics["lr"] = metrics_lib.Average.of(optim.current_lr(schedule, opt_state, state.step))
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                         carry=carry), metrics

  return train_step


def task_step(task: Task, tx: optax.GradientTransformation, schedule: Callable):
  """The task's ``train_step(state, batch, rng, hp)``: its own (``make_step``) or the default."""
  if task.make_step is not None:
    return task.make_step(tx, schedule)
  return make_train_step(task.loss_fn, tx, schedule, task.init_carry)
