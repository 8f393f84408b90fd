"""Skip-gram word2vec as a pure function of a parameter tree, with a sparse SGD
step fast enough to race gensim on a CPU.

Parameters: ``{'in': V x D, 'out': V x D[, 'bias': V]}``: the input vectors
(the notes' ``embeddings``, gensim's ``syn0``) and the output vectors (the
notes' ``nce_weights``, gensim's ``syn1neg``); ``bias`` for NCE as TF has it.

A minibatch of ``B`` pairs is split into ``G`` groups of ``B/G`` pairs; each
group shares ``S`` sampled classes (TF's ``nce_loss`` shares its 64 across the
whole batch: ``G = 1``). Sharing turns the sampled logits into a matmul; groups
bound how many pairs push one sampled row in a single step (with one group
over thousands of pairs, frequent noise words receive thousands of summed
updates at once and training fails).

:func:`sparse_update` is the fast path: it gathers the rows a minibatch
touches, differentiates the loss with respect to those rows only, and adds
``-lr * grad`` back in place (a scatter-add), so a step costs O(B D), not
O(V D). It is exactly SGD on the same loss that :func:`loss` gives the dense path
(any optax optimizer); :func:`lib.train.sparse_sgd.make_sparse_step` runs many
minibatches of it per dispatched trainer step.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from lib.errors import ConfigError
from lib.losses import sampled as sampled_losses, samplers as cs
from lib.metrics import Average

_FAST = "promise_in_bounds"  # ids come from the vocabulary: skip bounds handling


@dataclasses.dataclass(frozen=True)
class Spec:
  """What the loss is. ``loss``: 'neg' (word2vec), 'nce' (TF / the notes) or
  'softmax' (exact). ``sampler``: 'unigram' (counts ** power) or 'log_uniform'.
  ``negatives``: word2vec's k; the S = ``num_sampled`` shared samples are
  weighted ``k / S`` ('neg' only). ``reduce``: 'sum' (word2vec: one SGD step per
  pair) or 'mean' (the notes' ``reduce_mean``)."""
  vocab_size: int
  dim: int
  loss: str = "neg"
  sampler: str = "unigram"
  num_sampled: int = 16
  negatives: int = 5
  group_size: int = 256
  unique: bool = False
  power: float = 0.75
  reduce: str = "sum"
  init: str = "word2vec"   # 'word2vec' (gensim) | 'notes' (TF tutorial)

  def __post_init__(self):
    if self.loss not in ("neg", "nce", "softmax"):
      raise ConfigError(f"loss must be 'neg', 'nce' or 'softmax', got {self.loss!r}.")
    if self.sampler not in ("unigram", "log_uniform"):
      raise ConfigError(f"sampler must be 'unigram' or 'log_uniform', got {self.sampler!r}.")
    if self.reduce not in ("sum", "mean"):
      raise ConfigError(f"reduce must be 'sum' or 'mean', got {self.reduce!r}.")


def init_params(spec: Spec, key: jax.Array) -> dict:
  """gensim: ``in`` uniform in +-0.5/D, ``out`` zeros. The notes (TF tutorial):
  ``in`` uniform in +-1, ``out`` truncated normal with std 1/sqrt(D), zero biases."""
  V, D = spec.vocab_size, spec.dim
  k1, k2 = jax.random.split(key)
  if spec.init == "word2vec":
    p = {"in": jax.random.uniform(k1, (V, D), minval=-0.5 / D, maxval=0.5 / D),
         "out": jnp.zeros((V, D))}
  elif spec.init == "notes":
    p = {"in": jax.random.uniform(k1, (V, D), minval=-1.0, maxval=1.0),
         "out": jax.random.truncated_normal(k2, -2.0, 2.0, (V, D)) / np.sqrt(D)}
  else:
    raise ConfigError(f"init must be 'word2vec' or 'notes', got {spec.init!r}.")
  if spec.loss != "neg":
    p["bias"] = jnp.zeros((V,))
  return p


class Noise:
  """The sampler of a spec, with its class probabilities (for ``log Q``)."""

  def __init__(self, spec: Spec, counts_V: Optional[np.ndarray]):
    self.spec = spec
    if spec.sampler == "log_uniform":
      self.probs = cs.log_uniform_probs(spec.vocab_size)
    else:
      if counts_V is None:
        raise ConfigError("the unigram sampler needs word counts.")
      self.probs = cs.unigram_probs(counts_V, spec.power)

  def sample(self, key: jax.Array, targets_GxB: jax.Array) -> cs.Sampled:
    """Per group: ``S`` classes and the expected counts of the targets and samples."""
    s = self.spec
    G = targets_GxB.shape[0]
    if not s.unique:  # one draw for every group: no per-group keys or vmap
      probs = None if s.sampler == "log_uniform" else self.probs
      sampled = cs.draw(key, (G, s.num_sampled), probs, s.vocab_size)
      p = jnp.asarray(self.probs, jnp.float32)
      n = jnp.full((G,), s.num_sampled, jnp.int32)
      return cs.Sampled(sampled, cs.expected_count(p[targets_GxB], s.num_sampled, n, False),
                        cs.expected_count(p[sampled], s.num_sampled, n, False), n)

    def one(k, t):
      if s.sampler == "log_uniform":
        return cs.log_uniform_sampler(k, t, s.num_sampled, True, s.vocab_size)
      return cs.unigram_sampler(k, t, s.num_sampled, True, self.probs)

    return jax.vmap(one)(jax.random.split(key, G), targets_GxB)


def _groups(spec: Spec, n: int) -> int:
  """Groups in a minibatch of ``n`` pairs (one when ``n <= group_size``)."""
  if n <= spec.group_size:
    return 1
  if n % spec.group_size:
    raise ConfigError(f"a minibatch of {n} pairs does not split into groups of {spec.group_size}.")
  return n // spec.group_size


def rows_loss(spec: Spec, rows: dict, samples: Optional[cs.Sampled], mask_B: jax.Array,
              negatives=None) -> jax.Array:
  """The loss summed over real pairs (``reduce='sum'``) or averaged, from the
  gathered rows: ``h`` (B, D) inputs, ``wt``/``bt`` the targets' output rows,
  ``ws``/``bs`` (G, S[, D]) the samples'. ``negatives``: word2vec's k when it is
  swept (traced), else ``spec.negatives``."""
  h, wt = rows["h"], rows["wt"]
  B, D = h.shape
  G = _groups(spec, B)
  if spec.loss == "softmax":
    raise ConfigError("softmax has no rows form; use loss().")
  logq_t = logq_s = None
  if spec.loss == "nce":
    logq_t = jnp.log(samples.true_expected_count).reshape(G, -1)
    logq_s = jnp.log(samples.sampled_expected_count_S)
  true, sampled = sampled_losses.grouped_logits(
      h.reshape(G, -1, D), wt.reshape(G, -1, D), rows["ws"],
      None if "bt" not in rows else rows["bt"].reshape(G, -1), rows.get("bs"), logq_t, logq_s)
  k = spec.negatives if negatives is None else negatives
  weight = k / spec.num_sampled if spec.loss == "neg" else 1.0
  per_pair = sampled_losses.binary_logistic(true, sampled, weight).reshape(B)
  total = jnp.sum(per_pair * mask_B)
  return total / jnp.maximum(mask_B.sum(), 1.0) if spec.reduce == "mean" else total


def draw_samples(spec: Spec, noise: Noise, key, target_B) -> cs.Sampled:
  """The noise classes of a minibatch of ``B`` pairs (``G`` groups), or of ``M``
  minibatches at once (``target_MxB``: one draw for all, sliced per minibatch)."""
  *lead, B = target_B.shape
  G = _groups(spec, B)
  n = int(np.prod(lead, dtype=int))
  samples = noise.sample(key, target_B.reshape(n * G, -1))
  return jax.tree.map(lambda a: a.reshape(*lead, G, *a.shape[1:]), samples)._replace(
      true_expected_count=samples.true_expected_count.reshape(*lead, B))


def _out_index(samples: cs.Sampled, target_B):
  return jnp.concatenate([target_B, samples.sampled_S.reshape(-1)])


def _split_rows(spec: Spec, h, w_out, b_out, B):
  G = _groups(spec, B)
  rows = {"h": h, "wt": w_out[:B], "ws": w_out[B:].reshape(G, spec.num_sampled, -1)}
  if b_out is not None:
    rows["bt"], rows["bs"] = b_out[:B], b_out[B:].reshape(G, spec.num_sampled)
  return rows


def loss(spec: Spec, noise: Optional[Noise], params: dict, batch: dict, key: jax.Array,
         negatives=None) -> tuple[jax.Array, dict]:
  """``(objective, metrics)`` of one minibatch for the dense path (``jax.grad``
  over the whole tree; any optax optimizer). ``metrics['loss']`` is per pair."""
  x, y, m = batch["input"], batch["target"], batch["mask"]
  h = params["in"][x]
  if spec.loss == "softmax":
    per = sampled_losses.softmax_loss(params["out"], params.get("bias"), y, h)
    total = jnp.sum(per * m)
  else:
    samples = draw_samples(spec, noise, key, y)
    out_idx = _out_index(samples, y)
    b = params["bias"][out_idx] if "bias" in params else None
    rows = _split_rows(spec, h, params["out"][out_idx], b, y.shape[0])
    spec_sum = dataclasses.replace(spec, reduce="sum")
    total = rows_loss(spec_sum, rows, samples, m, negatives)
  n = jnp.sum(m)
  objective = total / jnp.maximum(n, 1.0) if spec.reduce == "mean" else total
  return objective, {"loss": Average.of(total, n)}


def sparse_update(spec: Spec, params: dict, batch: dict, samples: cs.Sampled,
                  lr: jax.Array, negatives=None) -> tuple[dict, jax.Array]:
  """One SGD minibatch touching only its rows, with its noise classes from
  :func:`draw_samples`: ``(params, loss summed over pairs)``."""
  x, y, m = batch["input"], batch["target"], batch["mask"]
  out_idx = _out_index(samples, y)
  has_bias = "bias" in params
  h = params["in"].at[x].get(mode=_FAST)
  w = params["out"].at[out_idx].get(mode=_FAST)
  b = params["bias"].at[out_idx].get(mode=_FAST) if has_bias else None

  def objective(h, w, b):
    return rows_loss(spec, _split_rows(spec, h, w, b, y.shape[0]), samples, m, negatives)

  argnums = (0, 1, 2) if has_bias else (0, 1)
  value, grads = jax.value_and_grad(objective, argnums=argnums)(h, w, b)
  new = dict(params)
  new["in"] = params["in"].at[x].add(-lr * grads[0], mode=_FAST)
  new["out"] = params["out"].at[out_idx].add(-lr * grads[1], mode=_FAST)
  if has_bias:
    new["bias"] = params["bias"].at[out_idx].add(-lr * grads[2], mode=_FAST)
  per_pair_sum = value * jnp.maximum(m.sum(), 1.0) if spec.reduce == "mean" else value
  return new, per_pair_sum
