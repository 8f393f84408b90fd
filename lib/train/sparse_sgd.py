"""The trainer step of skip-gram word2vec's sparse SGD (:mod:`lib.nn.word2vec`):
many minibatches of row updates in one ``lax.scan`` per dispatched step."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from lib.errors import ConfigError
from lib.metrics import Average
from lib.nn.word2vec import Noise, Spec, draw_samples, sparse_update
from lib.train import optim


def step_compiler_options() -> dict[str, str]:
  """XLA options for the sparse step on the CPU: YNNPACK for the matmuls only (its
  fused reductions and element-wise kernels make the step about 6% slower on
  XLA:CPU, jax 0.10); none elsewhere."""
  if jax.default_backend() != "cpu":
    return {}
  return {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}


def make_sparse_step(spec: Spec, noise: Noise, minibatch: int):
  """A trainer step (see ``lib.train.task.Task.make_step``) that runs the step's
  pairs as ``P / minibatch`` sparse SGD minibatches in one ``lax.scan``; the
  learning rate follows ``schedule`` at fractional steps, so a linear decay
  falls minibatch by minibatch, as word2vec's falls word by word."""

  def make(tx, schedule):
    del tx  # plain SGD, applied row by row

    def train_step(state, batch, rng, hp=None):
      negatives = (hp or {}).get("model.negatives")  # swept: traced
      P = batch["input"].shape[0]
      if P % minibatch:
        raise ConfigError(f"pairs per step {P} is not a multiple of the minibatch {minibatch}.")
      M = P // minibatch
      mbs = {k: v.reshape(M, minibatch) for k, v in batch.items()}
      samples = draw_samples(spec, noise, rng, mbs["target"])  # one draw for the M minibatches

      def body(params, xs):
        j, mb, smp = xs
        lr = optim.lr_at(schedule, state.opt_state, state.step + j / M)
        return sparse_update(spec, params, mb, smp, lr, negatives)

      params, totals = jax.lax.scan(body, state.params, (jnp.arange(M), mbs, samples))
      n = jnp.sum(batch["mask"])
      metrics = {"loss": Average.of(jnp.sum(totals), n), "pairs": Average.of(n),
                 "lr": Average.of(optim.current_lr(schedule, state.opt_state, state.step))}
      return state.replace(step=state.step + 1, params=params), metrics

    return train_step

  return make
