"""Notes 000's pair classifier, written for one example (``jax.vmap`` maps it over a batch).

One shared tanh Elman encoder reads both sentences (masks freeze the state past
each sentence's end: the notes' ``masked_step``), the two final states are
concatenated, and a softmax layer gives 6 classes::

    h_t = tanh(x_t W + h_{t-1} U + b),  h_0 learned
    p = softmax([h_A, h_B] W_out + b_out)

Parameters ``{'w_x', 'w_rec', 'b', 'h0', 'w_out', 'b_out'[, 'embed']}``. Matrices
are read through :func:`lib.nn.variational.matmul` / :func:`lookup`, so the same
function serves the posterior mean, one sample per example or per minibatch,
and flipout. ``cell='gru'``, ``'lstm'`` or any other cell of :mod:`lib.nn.cells`
reads the sentences instead (its input map in ``w_x``, ``b``; the recurrence's own
parameters beside them), every weight variational alike. ``cell='bow'``
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
BOW = "bow"  # model.cell: no recurrence, the mean of the word vectors


@dataclasses.dataclass(frozen=True)
class PairRNN:
  input_dim: int = 50
  hidden: int = 50
  num_classes: int = 6
  vocab_size: int = 0        # > 0: a learned embedding table of vocab_size x input_dim
  cell: str = "elman"        # any lib.nn.cells name (the notes: elman), or 'bow'
  init: str = "zeros"        # every matrix (the notes: zero means); an initializer name, or
                             # 'default': each cell's own initialisation
  unroll: int = 1
  features: str = "concat"   # concat (the notes: [h_A, h_B]) | match (+ |h_A - h_B|, h_A * h_B)

  def make_cell(self) -> cells.Cell | None:
    return None if self.cell == BOW else cells.make(self.cell, self.hidden)

  def init_params(self, key: jax.Array) -> dict:
    D, H, C = self.input_dim, self.hidden, self.num_classes
    if self.features not in FEATURES:
      raise ValueError(f"Unknown features {self.features!r}; expected one of {FEATURES}.")
    cell = self.make_cell()
    default = self.init == "default"
    # The cell's own values of what it keeps (its vectors; every weight under 'default'),
    # as one program: the matrices drawn below are never computed twice.
    keep = lambda v: default or v.ndim != 2  # noqa: E731
    own = ({"w_x": jnp.zeros((D, H)), "b": jnp.zeros((H,))} if cell is None else jax.jit(
        lambda k: {n: v if keep(v) else jnp.zeros(v.shape, v.dtype)
                   for n, v in cell.init(k, D).items()})(jax.random.fold_in(key, 11)))
    head = {"w_out": jnp.zeros((FEATURES[self.features] * H, C)), "b_out": jnp.zeros((C,))}
    if cell is not None:
      head = {"h0": jnp.zeros((H,)), **head}
    # One key per parameter, in the order (w_x, w_rec, b, h0, w_out, b_out, the cell's others).
    first = [n for n in ("w_x", "w_rec", "b") if n in own]
    order = first + list(head) + [n for n in own if n not in first]
    keys = dict(zip(order, jax.random.split(key, len(order))))
    init = initializers.get("glorot_uniform" if default else self.init)
    params = {}
    for name in order:
      value = own[name] if name in own else head[name]
      fresh = value.ndim == 2 and not (default and name in own)  # the cell's vectors stay its own
      params[name] = init(keys[name], value.shape) if fresh else value
    if self.vocab_size:
      params["embed"] = initializers.normal(0.1)(jax.random.fold_in(key, 7), (self.vocab_size, D))
    return params

  def encode(self, p: dict, x_BxTxD: jax.Array, m_BxT: jax.Array) -> jax.Array:
    """The final states ``h`` (B x H) of a few sentences read with the same weights.

    The input product is hoisted (one :func:`lib.nn.variational.matmul` for all
    steps); the recurrence is :func:`lib.nn.recurrence.unroll`, whose backward pass
    forms a dense cell's recurrent gradient as one product over all steps (with
    per-example weights, one per example instead of one per step and example: the
    notes' vmapped step about a third faster). A dense cell's flipout ``w_rec`` runs
    through its own scan of :func:`lib.nn.variational.matmul`; any other flipout
    matrix is this example's own (:func:`lib.nn.variational.materialize`)."""
    cell = self.make_cell()
    xw_BxTxG = vi.matmul(x_BxTxD, p["w_x"])  # hoisted: one product for all steps
    if "b" in p:
      xw_BxTxG = xw_BxTxG + p["b"]
    if cell is None:
      mean = (xw_BxTxG * m_BxT[..., None]).sum(1) / jnp.maximum(m_BxT.sum(1), 1.0)[:, None]
      return jnp.tanh(mean)
    h0_BxH = jnp.broadcast_to(p["h0"], (x_BxTxD.shape[0], self.hidden))
    carry0 = cell.with_output(cell.zero_carry((x_BxTxD.shape[0],)), h0_BxH)
    if isinstance(cell, cells.DenseCell) and isinstance(p["w_rec"], vi.Flipout):
      return cell.output(self._flipout_scan(cell, p, xw_BxTxG, m_BxT, carry0))
    names = jax.eval_shape(lambda k: cell.init(k, 1), jax.random.key(0)).keys() - {"w_x", "b"}
    rec = {k: vi.materialize(p[k]) for k in names}
    carry, _ = recurrence.unroll(cell, rec, xw_BxTxG, mask_BxT=m_BxT, initial_carry=carry0,
                                 unroll=self.unroll, projected=True)
    return cell.output(carry)

  def _flipout_scan(self, cell, p, xw_BxTxG, m_BxT, carry0):
    def step(carry, inputs):
      xw_t, real = inputs
      new, _ = cell.combine(p, carry, xw_t, vi.matmul(cell.output(carry), p["w_rec"]))
      return jax.tree.map(lambda n, o: jnp.where(real[:, None], n, o), new, carry), None

    inputs = (jnp.swapaxes(xw_BxTxG, 0, 1), jnp.swapaxes(m_BxT, 0, 1) > 0)
    return jax.lax.scan(step, carry0, inputs, unroll=self.unroll)[0]

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
