"""Notes 000's pair classifier, written for one example (``jax.vmap`` maps it over a batch).

One shared tanh Elman encoder reads both sentences (masks freeze the state past
each sentence's end: the notes' ``masked_step``), the two final states are
concatenated, and a softmax layer gives 6 classes::

    h_t = tanh(x_t W + h_{t-1} U + b),  h_0 learned
    p = softmax([h_A, h_B] W_out + b_out)

Parameters ``{'w_x', 'w_rec', 'b', 'h0', 'w_out', 'b_out'[, 'embed']}``. Matrices
are read through :func:`lib.nn.variational.matmul` / :func:`lookup`, so the same
function serves the posterior mean, one sample per example or per minibatch,
and flipout. ``encoder='gru'`` / ``'lstm'`` read the sentences with
:mod:`lib.nn.cells`' gated cells instead (their gate blocks in ``w_x``, ``w_rec``,
``b``; GRU's ``b_rec``), every weight variational alike. ``encoder='bow'``
replaces the recurrence by ``tanh(mean_t(x_t) W + b)`` (the bag-of-words
control: it cannot see word order). ``features='match'`` feeds
the softmax layer ``[h_A, h_B, |h_A - h_B|, h_A * h_B]`` (the matching features of
sentence-pair models since Mueller & Thyagarajan 2016 / InferSent) instead of the
notes' ``[h_A, h_B]``.
"""
from __future__ import annotations

import dataclasses

import math

import jax
import jax.numpy as jnp

from lib.nn import cells, initializers, recurrence, variational as vi


def lookup(ids_T: jax.Array, table: vi.Weight) -> jax.Array:
  """Rows of an embedding table; for a flipout view, the rows of ``one_hot(ids) @ W``."""
  if isinstance(table, vi.Flipout):
    return table.mean[ids_T] + (table.sign_in[ids_T][:, None] * table.delta[ids_T]) * table.sign_out
  return table[ids_T]


FEATURES = {"concat": 2, "match": 4}  # features -> multiples of the hidden size
ENCODERS = {"rnn": cells.Elman, "gru": cells.GRU, "lstm": cells.LSTM, "bow": None}


@dataclasses.dataclass(frozen=True)
class PairRNN:
  input_dim: int = 50
  hidden: int = 50
  num_classes: int = 6
  vocab_size: int = 0        # > 0: a learned embedding table of vocab_size x input_dim
  encoder: str = "rnn"       # rnn (the notes' tanh Elman) | gru | lstm | bow
  init: str = "zeros"        # the notes initialise every mean at zero; or an initializer name
  unroll: int = 1
  features: str = "concat"   # concat (the notes: [h_A, h_B]) | match (+ |h_A - h_B|, h_A * h_B)

  def cell(self) -> cells.Cell | None:
    if self.encoder not in ENCODERS:
      raise ValueError(f"Unknown encoder {self.encoder!r}; expected one of {list(ENCODERS)}.")
    make = ENCODERS[self.encoder]
    return make(hidden=self.hidden) if make else None

  def init_params(self, key: jax.Array) -> dict:
    D, H, C = self.input_dim, self.hidden, self.num_classes
    if self.features not in FEATURES:
      raise ValueError(f"Unknown features {self.features!r}; expected one of {FEATURES}.")
    cell = self.cell()
    G = cell.gates * H if cell else H
    shapes = {"w_x": (D, G), "w_rec": (H, G), "b": (G,), "h0": (H,),
              "w_out": (FEATURES[self.features] * H, C),
              "b_out": (C,)}
    if cell is None:
      del shapes["w_rec"], shapes["h0"]
    if isinstance(cell, cells.GRU):
      shapes["b_rec"] = (G,)
    init = initializers.get(self.init)
    keys = dict(zip(shapes, jax.random.split(key, len(shapes))))
    params = {k: (init(keys[k], s) if len(s) == 2 else jnp.zeros(s)) for k, s in shapes.items()}
    if isinstance(cell, cells.LSTM):  # Keras' forget-gate bias of 1
      params["b"] = params["b"].at[H:2 * H].set(cell.forget_bias)
    if self.vocab_size:
      params["embed"] = initializers.normal(0.1)(jax.random.fold_in(key, 7), (self.vocab_size, D))
    return params

  def encode(self, p: dict, x_BxTxD: jax.Array, m_BxT: jax.Array) -> jax.Array:
    """The final states ``h`` (B x H) of a few sentences read with the same weights.

    Plain matrices run through :func:`lib.nn.recurrence.unroll`, whose backward
    pass forms the recurrent weight's gradient as one product over all steps
    (with per-example weights, one per example instead of one per step and example:
    the notes' vmapped step about a third faster); a flipout view, through its own
    scan of :func:`lib.nn.variational.matmul`."""
    cell = self.cell()
    xw_BxTxG = vi.matmul(x_BxTxD, p["w_x"]) + p["b"]  # hoisted: one product for all steps
    if cell is None:
      mean = (xw_BxTxG * m_BxT[..., None]).sum(1) / jnp.maximum(m_BxT.sum(1), 1.0)[:, None]
      return jnp.tanh(mean)
    h0_BxH = jnp.broadcast_to(p["h0"], (x_BxTxD.shape[0], self.hidden))
    carry0 = (h0_BxH, jnp.zeros_like(h0_BxH)) if isinstance(cell, cells.LSTM) else h0_BxH
    if not isinstance(p["w_rec"], vi.Flipout):
      carry, _ = recurrence.unroll(cell, {"w_rec": p["w_rec"], **cell.extra_params(p)},
                                   xw_BxTxG, mask_BxT=m_BxT, initial_carry=carry0,
                                   unroll=self.unroll, projected=True)
      return cell.output(carry)

    def step(carry, inputs):
      xw_t, real = inputs
      new, _ = cell.combine(p, carry, xw_t, vi.matmul(cell.output(carry), p["w_rec"]))
      return jax.tree.map(lambda n, o: jnp.where(real[:, None], n, o), new, carry), None

    inputs = (jnp.swapaxes(xw_BxTxG, 0, 1), jnp.swapaxes(m_BxT, 0, 1) > 0)
    carry, _ = jax.lax.scan(step, carry0, inputs, unroll=self.unroll)
    return cell.output(carry)

  def logits(self, p: dict, inputs: dict, vectors=None) -> jax.Array:
    """Logits (C) of one example: ``inputs`` holds ``ids1, mask1, ids2, mask2`` (each T).

    Both sentences go through one scan (a batch of two, weights shared), as
    the notes step ``hiddens1`` and ``hiddens2`` in the same loop: half the sequential steps.
    """
    table = p["embed"] if self.vocab_size else vectors
    ids_2xT = jnp.stack([inputs["ids1"], inputs["ids2"]])
    m_2xT = jnp.stack([inputs["mask1"], inputs["mask2"]])
    x_2xTxD = jax.vmap(lookup, in_axes=(0, None))(ids_2xT, table)
    h_a, h_b = self.encode(p, x_2xTxD, m_2xT)
    feats = [h_a, h_b] + ([jnp.abs(h_a - h_b), h_a * h_b] if self.features == "match" else [])
    return vi.matmul(jnp.concatenate(feats), p["w_out"]) + p["b_out"]


def kl_notes(post: dict, prior: vi.Gaussian) -> jax.Array:
  """Notes 000's expression, kept to reproduce their run (shared ``log_sigma`` only).

  It is the closed form with the ``k`` per-weight terms ``sq^2/sp^2`` and
  ``2 log sp - 2 log sq`` counted once instead of ``k`` times, so its pull on
  ``log_sigma`` is ``k`` times weaker than the true KL's (``k`` = number of weights).
  """
  ls = post["log_sigma"]
  if not isinstance(ls, jax.Array) or ls.ndim != 0:
    raise ValueError("kl_notes needs the notes' shared log_sigma (sigma mode 'shared').")
  flat = jnp.concatenate([x.ravel() for x in jax.tree.leaves(post["mean"])])
  log_sp = math.log(prior.sigma) if isinstance(prior.sigma, (int, float)) else jnp.log(prior.sigma)
  return 0.5 * (jnp.exp(2 * ls) / prior.sigma ** 2 + jnp.sum(jnp.square(prior.mu - flat)) / prior.sigma ** 2
                - flat.size + 2 * log_sp - 2 * ls)
