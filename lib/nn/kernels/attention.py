"""Additive attention scores as one fused kernel call each way (float32).

``v . tanh(qp_t + kp_s)`` for every query step ``t`` and memory step ``s``: XLA writes the
``B x T x S x A`` tanh to memory and reads it back in the backward pass (124 MB for
the translation experiment's batch); the kernel computes each score's tanh in registers
and recomputes it in the backward pass. Equal to :func:`lib.nn.attention.scores`'
``additive`` form (a test holds them equal, values and gradients).
"""
from __future__ import annotations

import jax

from lib.nn.kernels import build


@jax.custom_vjp
def additive_scores(qp_BxTxA: jax.Array, kp_BxSxA: jax.Array, v_A: jax.Array) -> jax.Array:
  """``BxTxS`` scores ``sum_a v[a] tanh(qp[b,t,a] + kp[b,s,a])``."""
  B, T, _ = qp_BxTxA.shape
  return build.call("RnnlabAdditiveFwd", [(B, T, kp_BxSxA.shape[1])], qp_BxTxA, kp_BxSxA,
                    v_A)[0]


def _fwd(qp, kp, v):
  return additive_scores(qp, kp, v), (qp, kp, v)


def _bwd(res, g):
  qp, kp, v = res
  return tuple(build.call("RnnlabAdditiveBwd", [qp.shape, kp.shape, v.shape], qp, kp, v, g))


additive_scores.defvjp(_fwd, _bwd)
