"""Optimizers and learning-rate schedules chosen by config (all optax)."""
from __future__ import annotations

import inspect
from typing import Callable, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import optax

from lib.errors import ConfigError
from lib.runtime import durations

# Each optimizer's own arguments and their defaults: ``optimizer.<name>.<argument>``.
OPTIMIZERS = {
    "sgd": dict(momentum=0.0, nesterov=False),  # momentum 0: plain SGD
    "rmsprop": dict(decay=0.9, eps=1e-8),       # decay: of the squared-gradient average (TF/Keras 0.9)
    "adam": dict(b1=0.9, b2=0.999, eps=1e-8),
    "adamw": dict(b1=0.9, b2=0.999, eps=1e-8),  # decoupled decay: optimizer.weight_decay
    "adagrad": dict(initial_accumulator=0.1, eps=1e-8),
    "rprop": dict(eta_minus=0.5, eta_plus=1.2, min_step=1e-6, max_step=50.0),  # lr: first step size
}
SCHEDULES = ("constant", "linear", "cosine", "step")
# What every optimizer shares: float fields, then structural ones.
_SHARED = dict(
    clip_norm=0.0,   # gradient clipping (0 = off)
    clip_value=0.0,
    weight_decay=0.0,  # adamw's decoupled decay; added to the gradient (L2) by the others
    schedule="constant",  # or linear, cosine, step
    decay_rate=0.5,      # step: factor per decay (Zaremba et al.: 0.5 / 0.8 / 1/1.15)
    end_lr_fraction=0.0,  # linear / cosine: final lr as a fraction of lr
    # reduce on plateau (optax.contrib): multiply the lr by plateau_factor when the
    # training loss, averaged over plateau_every steps, has not improved on its best
    # for plateau_patience such windows. Notes 001: factor 0.5, patience 1, every
    # evaluation ("halve the learning rate when the loss increases"). 0 = off.
    plateau_factor=0.0,
    plateau_patience=1,
    plateau_rtol=1e-9,
    plateau_cooldown=0,
)


def default_config(name: str = "sgd", lr: float = 1e-3, **overrides) -> ml_collections.ConfigDict:
  """``name``, ``lr``, the shared fields (clipping, weight decay, schedule, plateau)
  and one section per optimizer with its own arguments (``optimizer.adam.b1``); the
  named optimizer reads its section. ``overrides`` set shared fields and the named
  optimizer's arguments: ``default_config('rmsprop', 1e-3, decay=0.95, clip_norm=5.0)``.
  Its durations (:mod:`lib.runtime.durations`) take any unit: ``decay_every_epochs=1``.
  """
  own = OPTIMIZERS.get(name, {})
  args = {k: overrides.pop(k) for k in list(overrides) if k in own}
  c = ml_collections.ConfigDict(durations.fields(dict(
      warmup=("steps", 0),
      # step: lr * decay_rate ** floor((step - decay_start) / decay_every), step >= decay_start
      decay_start=("steps", 0),
      decay_every=("steps", 1),
      # reduce on plateau: the window the training loss is averaged over
      plateau_every=("steps", 1),
  ), overrides))
  c.update(dict(name=name, lr=lr, **_SHARED))
  c.update({n: dict(a, **(args if n == name else {})) for n, a in OPTIMIZERS.items()})
  durations.set_fields(c, overrides, "optimizer")
  return c


# The values the optimizer state holds (``optax.inject_hyperparams``), traced: trials
# vmapped together may differ in any of them. Each optimizer argument's comes from
# the named optimizer's section (an argument it does not take: its default).
HYPERPARAMS = ("lr", "momentum", "b1", "b2", "eps", "weight_decay", "decay",
               "initial_accumulator", "eta_minus", "eta_plus", "min_step", "max_step",
               "clip_norm", "clip_value", "decay_rate", "end_lr_fraction")
# Each argument's default, from the first optimizer that takes it (read in reverse: the first writes last).
_DEFAULTS = {k: v for a in reversed(list(OPTIMIZERS.values())) for k, v in a.items()}
# Config keys (under ``optimizer.``) a vmapped sweep may vary in one program...
TUNABLE = ("lr", "clip_norm", "clip_value", "weight_decay", "decay_rate", "end_lr_fraction",
           *(f"{n}.{k}" for n, a in OPTIMIZERS.items() for k, v in a.items()
             if isinstance(v, float)))
# ...and those that change the optimizer's structure: trials differing in them train apart.
STRUCTURAL = ("name", "schedule", "sgd.nesterov", "warmup", "decay_start", "decay_every",
              "plateau_factor", "plateau_patience", "plateau_rtol", "plateau_cooldown",
              "plateau_every")
def values(cfg: ml_collections.ConfigDict) -> dict[str, float]:
  """The :data:`HYPERPARAMS` of a config, as the optimizer state holds them."""
  own = cfg[cfg.name] if cfg.name in OPTIMIZERS else {}
  return {k: float(own[k] if k in own else cfg[k] if k in cfg else _DEFAULTS[k])
          for k in HYPERPARAMS}


def make_schedule(cfg: ml_collections.ConfigDict, total_steps: int) -> Callable:
  """``schedule(step, hyper=None) -> lr``: the config's schedule; ``hyper`` (traced
  :data:`HYPERPARAMS` values, e.g. :func:`hyperparams` of a state) replaces its numbers."""
  if cfg.schedule not in SCHEDULES:
    raise ConfigError(f"optimizer.schedule={cfg.schedule!r}: expected one of {SCHEDULES}.")
  base = values(cfg)
  warmup, kind = cfg.warmup_steps, cfg.schedule
  span = max(total_steps - warmup, 1)
  start, every = cfg.decay_start_steps, cfg.decay_every_steps

  def schedule(step, hyper: Optional[Mapping] = None):
    h = base if hyper is None else hyper
    lr, end = h["lr"], h["lr"] * h["end_lr_fraction"]
    t = jnp.asarray(step, jnp.float32) - warmup
    if kind == "constant":
      value = lr * jnp.ones_like(t)
    elif kind == "linear":
      value = lr + (end - lr) * jnp.clip(t / span, 0.0, 1.0)
    elif kind == "cosine":
      cos = 0.5 * (1 + jnp.cos(jnp.pi * jnp.clip(t / span, 0.0, 1.0)))
      value = end + (lr - end) * cos
    else:  # step: lr * rate ** floor((t - decay_start) / decay_every), t >= decay_start
      value = lr * h["decay_rate"] ** jnp.floor(jnp.maximum(t - start, 0.0) / every)
    if warmup:
      value = jnp.where(t < 0, lr * (t + warmup) / warmup, value)
    return value
  return schedule


def make_optimizer(cfg: ml_collections.ConfigDict, total_steps: int, keep: Sequence[str] = ()
                   ) -> tuple[optax.GradientTransformation, Callable]:
  """Returns ``(tx, schedule)``; clipping is applied before the update rule.

  ``tx`` is ``optax.inject_hyperparams`` over the whole chain: its state holds
  the :data:`HYPERPARAMS` values (traced: trials vmapped together each hold their own).
  Clipping, weight decay and SGD's momentum at 0 are off: an ``optax.identity`` in their place
  (the same empty state, so checkpoints do not depend on them), except for the
  fields in ``keep`` (e.g. ``('clip_norm', 'sgd.momentum')``), which stay in the chain at any
  value, 0 an exact no-op, for trials vmapped together that differ in them. A
  clipping or decay transform that is off costs a pass over the gradients each
  step (about a quarter of the notes' Elman LM step vmapped over 32 trials)."""
  if not cfg.lr > 0:
    raise ConfigError(f"optimizer.lr={cfg.lr}: expected a positive learning rate.")
  if cfg.name not in OPTIMIZERS:
    hint = " (SGD with momentum is 'sgd' with optimizer.sgd.momentum > 0)" \
        if cfg.name == "momentum" else ""
    raise ConfigError(f"optimizer.name={cfg.name!r}: expected one of {tuple(OPTIMIZERS)}{hint}.")
  if cfg.name == "rprop" and cfg.schedule != "constant":
    raise ConfigError("rprop adapts its own step sizes; use optimizer.schedule='constant'.")
  sched = make_schedule(cfg, total_steps)

  def chain(**h):
    off = lambda v: jnp.where(v > 0, v, jnp.inf)  # 0 = no clipping
    part = lambda k, make: make(h[k]) if cfg[k] or k in keep else optax.identity()  # noqa: E731
    parts = [part("clip_value", lambda v: optax.clip(off(v))),
             part("clip_norm", lambda v: optax.clip_by_global_norm(off(v)))]
    if cfg.name != "adamw":
      parts.append(part("weight_decay", optax.add_decayed_weights))
    parts.append(_rule(cfg, h, lambda step: sched(step, h), _momentum_on(cfg, keep)))
    if cfg.plateau_factor:
      # Scales the final updates; its ``update`` takes ``value=`` (the loss), which
      # the trainer always passes (optax.chain forwards it only to who takes it).
      parts.append(optax.contrib.reduce_on_plateau(
          factor=cfg.plateau_factor, patience=cfg.plateau_patience, rtol=cfg.plateau_rtol,
          cooldown=cfg.plateau_cooldown, accumulation_size=cfg.plateau_every_steps))
    return optax.chain(*parts)

  # inject_hyperparams reads the factory's parameters from its signature.
  chain.__signature__ = inspect.Signature(
      [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY) for k in HYPERPARAMS])
  return optax.inject_hyperparams(chain)(**values(cfg)), sched


def scales_gradients(cfg: ml_collections.ConfigDict, keep: Sequence[str] = ()) -> bool:
  """Whether :func:`make_optimizer`'s update of every parameter is its gradient
  times one scalar of the state (schedule and plateau factor): plain SGD with no
  clipping and no weight decay, none of them in ``keep``. Such an update may be
  applied to a table's rows alone (:attr:`lib.train.task.Task.row_tables`)."""
  on = [k for k in ("clip_norm", "clip_value", "weight_decay") if cfg[k] or k in keep]
  return cfg.name == "sgd" and not on and not _momentum_on(cfg, keep)


def _momentum_on(cfg, keep: Sequence[str]) -> bool:
  """SGD keeps a momentum trace when its momentum is above 0 or vmapped trials vary it."""
  return cfg.name == "sgd" and (cfg.sgd.momentum > 0 or "sgd.momentum" in keep)


def _rule(cfg, h, sched, momentum: bool) -> optax.GradientTransformation:
  name = cfg.name
  if name == "sgd" and not momentum:
    return optax.sgd(sched)
  if name == "sgd":
    return optax.sgd(sched, momentum=h["momentum"], nesterov=cfg.sgd.nesterov)
  if name == "rmsprop":
    return optax.rmsprop(sched, decay=h["decay"], eps=h["eps"], momentum=None)
  if name == "adam":
    return optax.adam(sched, b1=h["b1"], b2=h["b2"], eps=h["eps"])
  if name == "adamw":
    return optax.adamw(sched, b1=h["b1"], b2=h["b2"], eps=h["eps"], weight_decay=h["weight_decay"])
  if name == "adagrad":
    return optax.adagrad(sched, initial_accumulator_value=h["initial_accumulator"], eps=h["eps"])
  return optax.rprop(h["lr"], eta_minus=h["eta_minus"], eta_plus=h["eta_plus"],
                     min_step_size=h["min_step"], max_step_size=h["max_step"])


def hyperparams(opt_state) -> Optional[dict]:
  """The :data:`HYPERPARAMS` values an optimizer state holds (traced under jit/vmap);
  None for a state that holds none (a hand-built one)."""
  return getattr(opt_state, "hyperparams", None)


def lr_at(schedule: Callable, opt_state, step) -> jax.Array:
  """``schedule`` at ``step`` with the values of ``opt_state`` (a plain
  ``schedule(step)`` when the state holds none)."""
  hyper = hyperparams(opt_state)
  return schedule(step) if hyper is None else schedule(step, hyper)


def current_lr(schedule: Callable, opt_state, step) -> jax.Array:
  """The learning rate of ``step``: :func:`lr_at` times the reduce-on-plateau factor."""
  return lr_at(schedule, opt_state, step) * lr_scale(opt_state)


def lr_scale(opt_state) -> float | jax.Array:
  """The reduce-on-plateau factor in ``opt_state`` (1.0 when there is none)."""
  scale = optax.tree_utils.tree_get(opt_state, "scale", default=None)
  return 1.0 if scale is None else scale
