"""Word-level recurrent language models as pure functions of a parameter dict.

* An embedding, ``layers`` recurrent layers (any cell of :mod:`lib.nn.cells`, by
  name) with dropout on the non-recurrent connections only, and a softmax layer; every weight from
  ``weight_init`` (Zaremba et al. 2014: ``uniform:0.1``, forget-gate bias 0), optional
  tying of the softmax and embedding weights.
* ``embedding_is_projection=True``: the embedding row of a token is the first
  layer's input projection (``U x_t`` for a one-hot ``x_t``), so that layer has
  no input kernel; with ``use_bias=False`` and ``weight_init='inv_sqrt_fan_in'`` this
  is the Elman LM of notes 001 (``s_t = tanh(U x_t + W s_{t-1})``,
  ``o_t = softmax(V s_t)``).

Every model runs through :func:`apply` (a whole window, ``lax.scan`` inside)
and :func:`step` (one token, for generation). The carry is a tuple with one
cell carry per layer, so it can be threaded across PTB windows.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

import jax
import jax.numpy as jnp
import optax

from lib.errors import ConfigError
from lib.metrics import Average
from lib.nn import cells, initializers, kernels, stacks
from lib.nn.kernels import softmax as kernel_softmax

Params = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class RecurrentLM:
  vocab_size: int
  hidden: int = 100
  cell: str = "elman"           # a lib.nn.cells name (elman, lstm, gru, lru, mingru, ...)
  layers: int = 1
  dropout: float = 0.0          # on embeddings, between layers and before the softmax
  weight_init: str = "uniform:0.1"  # every weight (a lib.nn.initializers name)
  tie_weights: bool = False     # softmax weights = embedding^T
  use_bias: bool = True         # cell and softmax biases
  embedding_is_projection: bool = False  # the embedding row is layer 0's input projection
  truncate: int = 0             # notes 001's bptt_truncate (0 = full BPTT); one layer only
  unroll: int = 1               # lax.scan unroll
  dtype: Optional[str] = None   # the cells' compute type (bfloat16: mixed precision; None: params')
  scan: str = "auto"            # linear cells' scan (lib.nn.scans.ScanType)
  order: str = "auto"           # the stack's order (lib.nn.stacks.Order: layers, wavefront)

  def __post_init__(self):
    if self.truncate and self.layers != 1:
      raise ConfigError("Per-output truncated BPTT (truncate > 0) needs layers=1; "
                       "stacked models truncate by window length (num_steps).")
    stacks.parse(self.order)
    if self.tie_weights and self.embedding_is_projection:
      raise ConfigError("tie_weights needs an embedding of the hidden size; with "
                       "embedding_is_projection the embedding is the first layer's projection.")

  # -- structure ----------------------------------------------------------------
  def make_cell(self, layer: int = 0) -> cells.Cell:
    """Layer ``layer``'s cell: ``weight_init`` on its kernels, Zaremba's forget-gate bias 0."""
    del layer  # every layer has the same cell
    return cells.make_supported(self.cell, self.hidden, kernel_init=self.weight_init,
                                recurrent_init=self.weight_init, use_bias=self.use_bias,
                                forget_bias=0.0, dtype=self.dtype, scan=self.scan)

  def init(self, key: jax.Array) -> Params:
    """``{'embed', 'layers', 'out'}``; keys: embedding, one per layer, softmax."""
    keys = jax.random.split(key, self.layers + 2)
    V, H = self.vocab_size, self.hidden
    init = initializers.get(self.weight_init)
    layers = [self.make_cell(l).init(keys[1 + l], H) for l in range(self.layers)
              if l > 0 or not self.embedding_is_projection]
    width = H
    if self.embedding_is_projection:  # layer 0 reads the embedding row as its input product
      cell0 = self.make_cell(0)
      width = cell0.proj_width
      # No input kernel and no bias: a bias would be a constant row added to every embedding.
      layers.insert(0, cell0.init_recurrent(keys[1]))
    params = {"embed": init(keys[0], (V, width)), "layers": layers, "out": {}}
    if self.use_bias:
      params["out"]["b"] = jnp.zeros((V,))
    if not self.tie_weights:
      params["out"]["w"] = init(keys[-1], (H, V))
    return params

  def zero_carry(self, batch: int, dtype=jnp.float32):
    return tuple(self.make_cell(l).zero_carry((batch,), dtype) for l in range(self.layers))

  # -- running ------------------------------------------------------------------
  def output_layer(self, params: Params):
    """``(w_HxV, b_V or None)`` of the softmax layer (``embed^T`` when tied)."""
    w = params["out"]["w"] if "w" in params["out"] else params["embed"].T
    return w, params["out"].get("b")

  def logits(self, params: Params, h_xH: jax.Array) -> jax.Array:
    w, b = self.output_layer(params)
    out = h_xH @ w
    return out if b is None else out + b

  def hidden_states(self, params: Params, x_BxT: jax.Array, carry=None, *,
                    rng: Optional[jax.Array] = None, train: bool = False):
    """``(new_carry, h_BxTxH)``: the top layer's outputs, before the softmax.
    Dropout (when ``train``) on the embeddings, between layers and on the outputs."""
    carry = self.zero_carry(x_BxT.shape[0], params["embed"].dtype) if carry is None else carry
    return stacks.stack([self.make_cell(l) for l in range(self.layers)], params["layers"],
                        params["embed"][x_BxT], initial_carries=carry,
                        dropout=self.dropout, rng=rng if train else None, dropout_ends=True,
                        projected=self.embedding_is_projection, truncate=self.truncate,
                        unroll=self.unroll, order=self.order)

  def apply(self, params: Params, x_BxT: jax.Array, carry=None, *,
            rng: Optional[jax.Array] = None, train: bool = False):
    """``(logits_BxTxV, new_carry)``."""
    carry, h = self.hidden_states(params, x_BxT, carry, rng=rng, train=train)
    return self.logits(params, h), carry

  def step(self, params: Params, carry, token_B: jax.Array):
    """One token per row: ``(logits_BxV, carry)`` (generation)."""
    h = params["embed"][token_B]
    new_carry = []
    for l in range(self.layers):
      cell, p = self.make_cell(l), params["layers"][l]
      xp = h if l == 0 and self.embedding_is_projection else cell.project(p, h)
      c, h = cell.step(p, carry[l], xp)
      new_carry.append(c)
    return self.logits(params, h), tuple(new_carry)


def softmax_nll(h_xH: jax.Array, w_HxV: jax.Array, b_V: Optional[jax.Array], y_x: jax.Array
                ) -> jax.Array:
  """Per-token ``-log softmax(h @ w + b)[y]``: the output layer and the loss in one op.

  Same values and gradients as autodiff of ``h @ w + b`` followed by optax's
  cross-entropy, but the backward pass forms ``(softmax - onehot) * g`` in one
  elementwise pass over the logits (the one-hot is an iota comparison inside
  that pass, never an array of its own) and feeds it to the two matrix
  products. On XLA:CPU this takes the Elman LM's output layer (1,024 tokens,
  vocabulary 8,000) from about 85 ms under autodiff, or with a scattered
  one-hot, to about 47 ms (launch/benchmarks/lm_step.py). The products run on
  2-D operands (leading axes flattened): with a ``B x T`` batch axis XLA:CPU
  picks slower layouts for them (93 ms against 57 ms at 32 x 32 tokens).
  """
  lead = y_x.shape
  nll_N = _softmax_nll(h_xH.reshape(-1, h_xH.shape[-1]), w_HxV, b_V, y_x.reshape(-1))
  return nll_N.reshape(lead)


@jax.custom_vjp
def _softmax_nll(h_NxH, w_HxV, b_V, y_N):
  return _softmax_nll_fwd(h_NxH, w_HxV, b_V, y_N)[0]


def _fused_rows(h, w) -> bool:
  """Whether the element-wise part runs through :mod:`lib.nn.kernels.softmax`
  (:func:`lib.nn.kernels.choose`'s ``auto``)."""
  return kernels.choose("auto", kernels.why_not(h, w), "softmax_nll", "xla")


def _softmax_nll_fwd(h, w, b, y):
  logits = h @ w
  if _fused_rows(h, w):
    bias = jnp.zeros((w.shape[-1],), jnp.float32) if b is None else b.astype(jnp.float32)
    logits, nll, lse = kernel_softmax.forward(logits, bias, y)
    return nll, (h, w, b, y, logits, lse)
  if b is not None:
    logits = logits + b
  logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
  lse = jax.nn.logsumexp(logits, axis=-1)
  picked = jnp.take_along_axis(logits, y[..., None], axis=-1)[..., 0]
  return lse - picked, (h, w, b, y, logits, lse)


def _softmax_nll_bwd(res, g):
  h, w, b, y, logits, lse = res
  if _fused_rows(h, w):
    d_NxV = kernel_softmax.backward(logits, lse, y, g.astype(jnp.float32))
  else:
    hit = jnp.arange(logits.shape[-1]) == y[..., None]
    d_NxV = ((jnp.exp(logits - lse[..., None]) - hit) * g[..., None]).astype(h.dtype)
  dh = d_NxV @ w.T
  # h^T materialized before its product with d: XLA:CPU runs ``h.T @ d`` with the
  # transposed operand at 178-182 GFLOP/s and the same product on a transposed copy at
  # 250 (400 x 200 by 400 x 10,000, 2 cores); the barrier keeps the copy from being
  # folded back into the dot.
  if b is None:
    return dh, jax.lax.optimization_barrier(h.T) @ d_NxV, None, None
  # db in the same product as dw (a row of ones under h^T): one pass over d, not two.
  h1_T = jax.lax.optimization_barrier(
      jnp.concatenate([h.T, jnp.ones((1, h.shape[0]), h.dtype)], axis=0))
  dwb = h1_T @ d_NxV
  return dh, dwb[:-1], dwb[-1], None


_softmax_nll.defvjp(_softmax_nll_fwd, _softmax_nll_bwd)


def nll(logits_BxTxV: jax.Array, y_BxT: jax.Array, mask_BxT: Optional[jax.Array] = None
        ) -> Average:
  """Summed negative log-likelihood of the targets and the number of real tokens."""
  losses = optax.softmax_cross_entropy_with_integer_labels(
      logits_BxTxV.astype(jnp.promote_types(logits_BxTxV.dtype, jnp.float32)), y_BxT)
  if mask_BxT is None:
    return Average(losses.sum(), jnp.asarray(losses.size, jnp.float32))
  return Average((losses * mask_BxT).sum(), mask_BxT.sum())


def perplexity(nll_per_token: float) -> float:
  return float(jnp.exp(nll_per_token))


def window_loss(model: RecurrentLM, params: Params, batch: dict, carry, rng, train: bool,
                normalize: str = "sequences"):
  """``(objective, (metrics, new_carry))`` for one batch.

  ``normalize='sequences'`` differentiates the sum over time averaged over the
  batch (Zaremba et al.'s cost, and notes 001's per-sentence loss for batch 1);
  ``'tokens'`` the mean per real token. Metrics are per real token either way.
  """
  carry, h = model.hidden_states(params, batch["x"], carry, rng=rng, train=train)
  losses = softmax_nll(h, *model.output_layer(params), batch["y"])
  mask = batch.get("mask")
  tot = (Average(losses.sum(), jnp.asarray(losses.size, jnp.float32)) if mask is None
         else Average((losses * mask).sum(), mask.sum()))
  if normalize == "sequences":
    objective = tot.total / batch["x"].shape[0]
  elif normalize == "tokens":
    objective = tot.total / jnp.maximum(tot.count, 1.0)
  else:
    raise ConfigError(f"normalize must be 'sequences' or 'tokens', got {normalize!r}.")
  return objective, ({"nll": tot}, carry)


def stream_nll(model: RecurrentLM, params: Params, x_NxBxT: jax.Array, y_NxBxT: jax.Array) -> Average:
  """Summed NLL of consecutive windows with the state carried across them (one scan)."""
  def body(carry, xy):
    logits, carry = model.apply(params, xy[0], carry)
    return carry, nll(logits, xy[1]).total

  _, totals = jax.lax.scan(body, model.zero_carry(x_NxBxT.shape[1]), (x_NxBxT, y_NxBxT))
  return Average(totals.sum(), jnp.asarray(y_NxBxT.size, jnp.float32))
