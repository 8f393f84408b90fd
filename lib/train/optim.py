"""Optimizers and learning-rate schedules chosen by config (all optax)."""
from __future__ import annotations

from typing import Callable

import jax
import ml_collections
import optax

from lib.train import durations
from lib.data.errors import ConfigError

OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam", "adamw", "adagrad", "rprop")
SCHEDULES = ("constant", "linear", "cosine", "step")


def default_config(name: str = "sgd", lr: float = 1e-3, **overrides) -> ml_collections.ConfigDict:
  """Every optimizer field, so any of them can be set from the command line.

  Its durations (:mod:`lib.train.durations`) take any unit: ``decay_every_epochs=1``.
  """
  c = ml_collections.ConfigDict(durations.fields(dict(
      warmup=("steps", 0),
      # step: lr * decay_rate ** floor((step - decay_start) / decay_every), step >= decay_start
      decay_start=("steps", 0),
      decay_every=("steps", 1),
      # reduce on plateau: the window the training loss is averaged over
      plateau_every=("steps", 1),
  ), overrides))
  c.update(dict(
      name=name,
      lr=lr,
      # momentum / sgd
      momentum=0.9,
      nesterov=False,
      # adam / adamw
      b1=0.9,
      b2=0.999,
      eps=1e-8,
      weight_decay=0.0,
      # rmsprop: running average of squared gradients (TF/Keras default 0.9)
      decay=0.9,
      # adagrad
      initial_accumulator=0.1,
      # rprop (Riedmiller & Braun): lr is the initial step size
      eta_minus=0.5,
      eta_plus=1.2,
      min_step=1e-6,
      max_step=50.0,
      # gradient clipping (0 = off)
      clip_norm=0.0,
      clip_value=0.0,
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
  ))
  durations.set_fields(c, overrides, "optimizer")
  return c


def make_schedule(cfg: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
  lr = cfg.lr
  if cfg.schedule == "constant":
    sched = optax.constant_schedule(lr)
  elif cfg.schedule == "linear":
    sched = optax.linear_schedule(lr, lr * cfg.end_lr_fraction,
                                  max(total_steps - cfg.warmup_steps, 1))
  elif cfg.schedule == "cosine":
    sched = optax.cosine_decay_schedule(lr, max(total_steps - cfg.warmup_steps, 1),
                                        alpha=cfg.end_lr_fraction)
  elif cfg.schedule == "step":
    sched = optax.exponential_decay(lr, transition_steps=cfg.decay_every_steps,
                                    decay_rate=cfg.decay_rate,
                                    transition_begin=cfg.decay_start_steps, staircase=True)
  else:
    raise ConfigError(f"optimizer.schedule={cfg.schedule!r}: expected one of {SCHEDULES}.")
  if cfg.warmup_steps:
    warm = optax.linear_schedule(0.0, lr, cfg.warmup_steps)
    sched = optax.join_schedules([warm, sched], [cfg.warmup_steps])
  return sched


def make_optimizer(cfg: ml_collections.ConfigDict, total_steps: int
                   ) -> tuple[optax.GradientTransformation, Callable]:
  """Returns ``(tx, schedule)``; clipping is applied before the update rule."""
  if not cfg.lr > 0:
    raise ConfigError(f"optimizer.lr={cfg.lr}: expected a positive learning rate.")
  sched = make_schedule(cfg, total_steps)
  name = cfg.name
  if name == "sgd":
    tx = optax.sgd(sched)
  elif name == "momentum":
    tx = optax.sgd(sched, momentum=cfg.momentum, nesterov=cfg.nesterov)
  elif name == "rmsprop":
    tx = optax.rmsprop(sched, decay=cfg.decay, eps=cfg.eps, momentum=None)
  elif name == "adam":
    tx = optax.adam(sched, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)
  elif name == "adamw":
    tx = optax.adamw(sched, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay)
  elif name == "adagrad":
    tx = optax.adagrad(sched, initial_accumulator_value=cfg.initial_accumulator, eps=cfg.eps)
  elif name == "rprop":
    if cfg.schedule != "constant":
      raise ConfigError("rprop adapts its own step sizes; use optimizer.schedule='constant'.")
    tx = optax.rprop(cfg.lr, eta_minus=cfg.eta_minus, eta_plus=cfg.eta_plus,
                     min_step_size=cfg.min_step, max_step_size=cfg.max_step)
  else:
    raise ConfigError(f"optimizer.name={name!r}: expected one of {OPTIMIZERS}.")
  chain = []
  if cfg.clip_value:
    chain.append(optax.clip(cfg.clip_value))
  if cfg.clip_norm:
    chain.append(optax.clip_by_global_norm(cfg.clip_norm))
  if cfg.weight_decay and name != "adamw":
    chain.append(optax.add_decayed_weights(cfg.weight_decay))
  chain.append(tx)
  if cfg.plateau_factor:
    # Scales the final updates; its ``update`` takes ``value=`` (the loss), which
    # the trainer always passes (optax.chain forwards it only to who takes it).
    chain.append(optax.contrib.reduce_on_plateau(
        factor=cfg.plateau_factor, patience=cfg.plateau_patience, rtol=cfg.plateau_rtol,
        cooldown=cfg.plateau_cooldown, accumulation_size=cfg.plateau_every_steps))
  return optax.chain(*chain), sched


def lr_scale(opt_state) -> float | jax.Array:
  """The reduce-on-plateau factor in ``opt_state`` (1.0 when there is none)."""
  scale = optax.tree_utils.tree_get(opt_state, "scale", default=None)
  return 1.0 if scale is None else scale
