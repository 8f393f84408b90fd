"""The element-wise part of softmax cross-entropy over rows of logits, one kernel call
each way (float32): what :func:`lib.nn.lm.softmax_nll` does around its matrix products.

Forward: the bias added in place, each row's log-sum-exp and ``-log softmax[y]``;
backward: ``(softmax - onehot(y)) * g`` written over the logits. Each row is read from
memory once (XLA makes three to four passes over the ``N x V`` logits for the same).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from lib.nn.kernels import build


def forward(logits_NxV: jax.Array, b_V: jax.Array, y_N: jax.Array):
  """``(logits + b, nll_N, lse_N)`` for rows of logits without their bias."""
  N = logits_NxV.shape[0]
  return build.call("RnnlabSoftmaxNllFwd", [logits_NxV.shape, (N,), (N,)], logits_NxV, b_V,
                    y_N.astype(jnp.int32), aliases={0: 0})


def backward(logits_NxV: jax.Array, lse_N: jax.Array, y_N: jax.Array, g_N: jax.Array):
  """``(softmax(logits) - onehot(y)) * g`` (``logits`` with their bias)."""
  return build.call("RnnlabSoftmaxNllBwd", [logits_NxV.shape], logits_NxV, lse_N,
                    y_N.astype(jnp.int32), g_N, aliases={0: 0})[0]
