"""The pure train step every run jits: value and gradient, the optax update, metrics."""
from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import optax

from lib.train import metrics as metrics_lib, optim
from lib.train.state import TrainState
from lib.train.task import Batch, LossFn


def make_train_step(loss_fn: LossFn, tx: optax.GradientTransformation,
                    schedule: Optional[Callable] = None,
                    init_carry: Optional[Callable[[], Any]] = None):
  """A pure ``train_step(state, batch, rng) -> (state, metrics)``.

  With ``init_carry`` the loss is stateful (see :class:`Task`).
  """
  tx = optax.with_extra_args_support(tx)

  def train_step(state: TrainState, batch: Batch, rng: jax.Array):
    carry = state.carry
    if init_carry is None:
      (objective, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
          state.params, batch, rng)
    else:
      if "reset" in batch:  # an epoch's first window starts from the initial state
        carry = jax.tree.map(lambda c, z: jnp.where(batch["reset"], z, c), carry, init_carry())
      (objective, (metrics, carry)), grads = jax.value_and_grad(
          lambda p: loss_fn(p, batch, rng, carry), has_aux=True)(state.params)
      carry = jax.lax.stop_gradient(carry)
    # ``value`` feeds reduce-on-plateau when configured; other transforms ignore it.
    updates, opt_state = tx.update(grads, state.opt_state, state.params, value=objective)
    if state.hparams is not None:
      updates = jax.tree.map(lambda u: u * state.hparams["lr"], updates)
    params = optax.apply_updates(state.params, updates)
    metrics = metrics_lib.as_averages(metrics)
    metrics.setdefault("loss", metrics_lib.Average.of(objective))
    metrics["grad_norm"] = metrics_lib.Average.of(optax.tree.norm(grads))
    if schedule is not None:
      scale = 1.0 if state.hparams is None else state.hparams["lr"]
      metrics["lr"] = metrics_lib.Average.of(schedule(state.step) * optim.lr_scale(opt_state) * scale)
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                         carry=carry), metrics

  return train_step
