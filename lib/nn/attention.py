"""Attention over a masked memory (encoder outputs), for all query steps at once.

Scores, for a query ``q`` (a decoder state) and a key ``k`` (an encoder output):

* ``dot``: ``q . k`` (Luong; "Deep Learning from Scratch 2", ch. 8), no parameters;
  needs equal sizes;
* ``general``: ``q W k`` (Luong's bilinear form);
* ``additive``: ``v . tanh(q W_q + k W_k)`` (Bahdanau).

On the CPU, with one device and float32 operands, ``additive`` scores run through a
fused kernel (:mod:`lib.nn.kernels.attention`) that never writes the ``B x T x S x A``
tanh to memory; ``kernel='xla'`` keeps XLA's form.

Padded memory steps get zero weight. Queries are ``BxTxQ`` so a teacher-forced
decoder attends for every step in one batched product, and greedy decoding
calls the same code with ``T = 1``.
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from lib.errors import ConfigError
from lib.nn import initializers, kernels
from lib.nn.kernels import attention as kernel_attention

KINDS = ("dot", "general", "additive")


def init(kind: str, key: jax.Array, query_dim: int, key_dim: int, dim: int = 0) -> dict:
  """Parameters of a scoring function (``dim``: additive attention's hidden size)."""
  glorot = initializers.get("glorot_uniform")
  if kind == "dot":
    if query_dim != key_dim:
      raise ConfigError(f"dot attention needs equal query and key sizes, got {query_dim}, {key_dim}.")
    return {}
  if kind == "general":
    return {"w": glorot(key, (query_dim, key_dim), jnp.float32)}
  if kind == "additive":
    kq, kk, kv = jax.random.split(key, 3)
    dim = dim or query_dim
    return {"w_q": glorot(kq, (query_dim, dim), jnp.float32),
            "w_k": glorot(kk, (key_dim, dim), jnp.float32),
            "v": glorot(kv, (dim, 1), jnp.float32)[:, 0]}
  raise ConfigError(f"Unknown attention {kind!r}; expected one of {KINDS}.")


KERNELS = ("auto", "xla", "fused")


def _fused_additive(kernel: str, *arrays: jax.Array) -> bool:
  """Whether additive scores run through the fused kernel (``kernel``: one of
  :data:`KERNELS`, chosen by :func:`lib.nn.kernels.choose`)."""
  if kernel not in KERNELS:
    raise ConfigError(f"Unknown attention kernel {kernel!r}; expected one of {list(KERNELS)}.")
  return kernels.choose(kernel, kernels.why_not(*arrays), "attention", "xla")


def scores(kind: str, params: dict, q_BxTxQ: jax.Array, k_BxSxK: jax.Array,
           kernel: str = "auto") -> jax.Array:
  """``BxTxS`` unnormalised scores (``kernel``: additive attention's, see the module
  docstring)."""
  if kind == "dot":
    return jnp.einsum("btq,bsq->bts", q_BxTxQ, k_BxSxK)
  if kind == "general":
    return jnp.einsum("btq,qk,bsk->bts", q_BxTxQ, params["w"], k_BxSxK)
  if kind == "additive":
    qp_BxTxA, kp_BxSxA = q_BxTxQ @ params["w_q"], k_BxSxK @ params["w_k"]
    if _fused_additive(kernel, qp_BxTxA, kp_BxSxA, params["v"]):
      return kernel_attention.additive_scores(qp_BxTxA, kp_BxSxA, params["v"])
    e_BxTxSxA = jnp.tanh(qp_BxTxA[:, :, None] + kp_BxSxA[:, None])
    return e_BxTxSxA @ params["v"]
  raise ConfigError(f"Unknown attention {kind!r}; expected one of {KINDS}.")


def attend(kind: str, params: dict, q_BxTxQ: jax.Array, memory_BxSxK: jax.Array,
           mask_BxS: Optional[jax.Array] = None, kernel: str = "auto"
           ) -> tuple[jax.Array, jax.Array]:
  """``(context_BxTxK, weights_BxTxS)``: the weighted sum of the memory per query."""
  s = scores(kind, params, q_BxTxQ, memory_BxSxK, kernel)
  if mask_BxS is not None:
    s = jnp.where(mask_BxS[:, None, :] > 0, s, jnp.finfo(s.dtype).min)
  w = jax.nn.softmax(s, axis=-1)
  return jnp.einsum("bts,bsk->btk", w, memory_BxSxK), w
