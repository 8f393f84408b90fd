"""The pure train step every run jits: value and gradient, the optax update, metrics."""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

import jax
import jax.numpy as jnp
import optax

from lib import metrics as metrics_lib
from lib.train import optim
from lib.train.state import TrainState
from lib.train.task import Batch, LossFn, Task


def make_train_step(loss_fn: LossFn, tx: optax.GradientTransformation,
                    schedule: Optional[Callable] = None,
                    init_carry: Optional[Callable[[], Any]] = None,
                    row_tables: Mapping[str, str] = {}):
  """A pure ``train_step(state, batch, rng, hp) -> (state, metrics)``.

  ``hp`` (the task's tunable values, :attr:`Task.hparams`; traced when trials are
  vmapped) is passed on to ``loss_fn`` as its last argument when it is not empty.
  With ``init_carry`` the loss is stateful (see :class:`Task`). With
  ``row_tables`` (:attr:`Task.row_tables`; only for a ``tx`` whose update is the
  gradient times a scalar, :func:`lib.train.optim.scales_gradients`) the loss is
  differentiated with respect to the rows of each table the batch reads, and
  their updates are added to those rows: no dense gradient of the table.
  """
  tx = optax.with_extra_args_support(tx)

  def train_step(state: TrainState, batch: Batch, rng: jax.Array, hp: Optional[Mapping] = None):
    carry, extra = state.carry, ((hp,) if hp else ())
    params, batch_in = _gathered(state.params, batch, row_tables)
    if init_carry is None:
      (objective, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
          params, batch_in, rng, *extra)
    else:
      if "reset" in batch:  # an epoch's first window starts from the initial state
        carry = jax.tree.map(lambda c, z: jnp.where(batch["reset"], z, c), carry, init_carry())
      (objective, (metrics, carry)), grads = jax.value_and_grad(
          lambda p: loss_fn(p, batch_in, rng, carry, *extra), has_aux=True)(params)
      carry = jax.lax.stop_gradient(carry)
    # ``value`` feeds reduce-on-plateau when configured; other transforms ignore it.
    updates, opt_state = tx.update(grads, state.opt_state, params, value=objective)
    params = optax.apply_updates(params, updates)
    for table, key in row_tables.items():
      params[table] = state.params[table].at[batch[key].reshape(-1)].add(updates[table])
    metrics = metrics_lib.as_averages(metrics)
    metrics.setdefault("loss", metrics_lib.Average.of(objective))
    metrics["grad_norm"] = metrics_lib.Average.of(_grad_norm(grads, batch, row_tables))
    if schedule is not None:
      metrics["lr"] = metrics_lib.Average.of(optim.current_lr(schedule, opt_state, state.step))
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                         carry=carry), metrics

  return train_step


def _gathered(params, batch, row_tables: Mapping[str, str]):
  """``(params, batch)`` with each row table replaced by the ``N`` rows that
  ``batch[key]`` reads (``N x W``) and ``batch[key]`` by ``0..N-1`` in its shape."""
  if not row_tables:
    return params, batch
  params, batch_in = dict(params), dict(batch)
  for table, key in row_tables.items():
    idx = batch[key]
    params[table] = params[table][idx.reshape(-1)]
    batch_in[key] = jnp.arange(idx.size, dtype=idx.dtype).reshape(idx.shape)
  return params, batch_in


def _grad_norm(grads, batch, row_tables: Mapping[str, str]) -> jax.Array:
  """The global norm of the dense gradient: a table's rows that share an index
  are summed first (sorted, then summed by segment)."""
  if not row_tables:
    return optax.tree.norm(grads)
  dense = {k: v for k, v in grads.items() if k not in row_tables}
  total = optax.tree.norm(dense, squared=True)
  for table, key in row_tables.items():
    idx, rows = batch[key].reshape(-1), grads[table]
    order = jnp.argsort(idx)
    sorted_idx = idx[order]
    segment = jnp.cumsum(jnp.concatenate([jnp.zeros(1, jnp.int32),
                                          (sorted_idx[1:] != sorted_idx[:-1]).astype(jnp.int32)]))
    summed = jax.ops.segment_sum(rows[order], segment, num_segments=idx.size)
    total = total + jnp.sum(jnp.square(summed))
  return jnp.sqrt(total)


def task_step(task: Task, tx: optax.GradientTransformation, schedule: Callable,
              scales_gradients: bool = False):
  """The task's ``train_step(state, batch, rng, hp)``: its own (``make_step``) or the
  default; with ``scales_gradients`` (``tx``'s update is the gradient times a scalar:
  :func:`lib.train.optim.scales_gradients`) the default one updates the task's
  :attr:`Task.row_tables` row by row."""
  if task.make_step is not None:
    return task.make_step(tx, schedule)
  rows = task.row_tables if scales_gradients else {}
  return make_train_step(task.loss_fn, tx, schedule, task.init_carry, rows)
