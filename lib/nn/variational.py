"""Variational inference over any parameter pytree (Graves 2011; Blundell et al. 2015).

The posterior is a diagonal Gaussian ``q(w) = N(mean, sigma^2)`` over every
weight of a pytree (Flax params, a plain dict, ...), stored as
``{'mean': tree, 'log_sigma': ...}``. ``log_sigma`` can be

* ``shared``: one scalar for the whole model (notes 000: ``var_log_sigma``),
* ``group``: one scalar per leaf (per parameter group: ``W``, ``U``, ``b``, ...),
* ``weight``: one per weight, shaped like ``mean`` (Bayes by Backprop).

Priors are a Gaussian (notes 000: ``N(0, 1000 I)``, i.e. ``sigma = 1000``) or
a scale mixture of two zero-mean Gaussians (Blundell et al. 2015). The KL is
closed-form for the Gaussian prior and a Monte Carlo estimate otherwise.

Sampling modes, all reparameterized (gradients reach ``mean`` and ``log_sigma``):

* ``example``: every example gets its own weight sample (the notes' batched
  weights and ``batched_dot``); here the model is written for one example and
  ``jax.vmap`` maps it over the batch and the stacked samples;
* ``minibatch``: one sample shared by the batch (Fortunato et al. 2017);
* ``flipout`` (Wen et al. 2018): a matrix ``W_b = M + (sigma * E) o (r_b s_b^T)``
  per example from one shared noise draw ``E`` and per-example random signs,
  computed as ``x M + ((x o s_b) (sigma * E)) o r_b``: two matrix products for
  the whole batch instead of one per example. Vectors (biases) and other
  leaves are sampled per example directly (they are cheap);
* ``mean``: the posterior mean (prediction, or the MAP twin).

A model reads matrices through :func:`matmul`, which understands the flipout
view, and is mapped over examples by :func:`per_example`::

    weights, axes = variational.draw(post, key, batch_size, "flipout")
    logits_B = variational.per_example(model_one, weights, axes, x_BxTxD, mask_BxT)
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, NamedTuple, Union

import jax
import jax.numpy as jnp

from lib.errors import ConfigError

Tree = Any
SIGMA_MODES = ("shared", "group", "weight")
SAMPLING_MODES = ("example", "minibatch", "flipout", "mean")


# -- posterior ---------------------------------------------------------------------
def init_posterior(mean: Tree, log_sigma: float = math.log(0.01), mode: str = "shared") -> dict:
  """``{'mean': mean, 'log_sigma': ...}`` with ``log_sigma`` shared, per group or per weight."""
  if mode == "shared":
    ls = jnp.asarray(log_sigma, jnp.float32)
  elif mode == "group":
    ls = jax.tree.map(lambda m: jnp.asarray(log_sigma, m.dtype), mean)
  elif mode == "weight":
    ls = jax.tree.map(lambda m: jnp.full_like(m, log_sigma), mean)
  else:
    raise ConfigError(f"Unknown sigma mode {mode!r}; expected one of {SIGMA_MODES}.")
  return {"mean": mean, "log_sigma": ls}


def log_sigmas(post: dict) -> Tree:
  """``log_sigma`` as a tree shaped like ``mean`` (leaves broadcastable to the weights)."""
  ls, mean = post["log_sigma"], post["mean"]
  if jax.tree.structure(ls) == jax.tree.structure(mean):
    return ls
  return jax.tree.map(lambda _: ls, mean)  # shared: the same scalar for every leaf


def sigmas(post: dict) -> Tree:
  return jax.tree.map(jnp.exp, log_sigmas(post))


def num_weights(tree: Tree) -> int:
  return sum(int(x.size) for x in jax.tree.leaves(tree))


def _normal_like(key: jax.Array, tree: Tree, batch: tuple[int, ...] = ()) -> Tree:
  leaves, treedef = jax.tree.flatten(tree)
  keys = jax.random.split(key, len(leaves))
  return jax.tree.unflatten(treedef, [jax.random.normal(k, (*batch, *x.shape), x.dtype)
                                      for k, x in zip(keys, leaves)])


def sample(post: dict, key: jax.Array) -> Tree:
  """One weight sample ``mean + sigma * eps`` (reparameterized)."""
  eps = _normal_like(key, post["mean"])
  return jax.tree.map(lambda m, s, e: m + s * e, post["mean"], sigmas(post), eps)


def sample_per_example(post: dict, key: jax.Array, n: int) -> Tree:
  """``n`` independent samples stacked on a leading axis (the notes' batched weights)."""
  eps = _normal_like(key, post["mean"], (n,))
  return jax.tree.map(lambda m, s, e: m + s * e, post["mean"], sigmas(post), eps)


# -- flipout -----------------------------------------------------------------------
class Flipout(NamedTuple):
  """One example's view of a flipout-perturbed matrix (see :func:`matmul`).

  ``mean`` and ``delta = sigma * E`` are shared by the batch; the signs are
  the example's own.
  """
  mean: jax.Array     # D x H
  delta: jax.Array    # D x H, one noise draw for the batch
  sign_in: jax.Array  # D  (B x D before vmap)
  sign_out: jax.Array  # H  (B x H before vmap)


Weight = Union[jax.Array, Flipout]


def matmul(x: jax.Array, w: Weight) -> jax.Array:
  """``x @ w`` for a plain matrix, or the flipout product for a :class:`Flipout` view."""
  if isinstance(w, Flipout):
    return x @ w.mean + ((x * w.sign_in) @ w.delta) * w.sign_out
  return x @ w


def materialize(w: Weight) -> jax.Array:
  """A plain matrix for one example's :class:`Flipout` view,
  ``M + (sigma E) o (s r^T)``; a plain matrix as given."""
  if isinstance(w, Flipout):
    return w.mean + w.delta * (w.sign_in[:, None] * w.sign_out[None, :])
  return w


def flipout_weights(post: dict, key: jax.Array, n: int) -> tuple[Tree, Tree]:
  """``(weights, vmap axes)`` for ``n`` examples: matrices as :class:`Flipout` views,
  other leaves sampled per example."""
  mean, sig = post["mean"], sigmas(post)
  leaves, treedef = jax.tree.flatten(mean)
  sig_leaves = treedef.flatten_up_to(sig)
  keys = jax.random.split(key, len(leaves))
  out, axes = [], []
  for k, m, s in zip(keys, leaves, sig_leaves):
    if m.ndim == 2:
      k_e, k_in, k_out = jax.random.split(k, 3)
      delta = s * jax.random.normal(k_e, m.shape, m.dtype)
      sign_in = jax.random.rademacher(k_in, (n, m.shape[0]), m.dtype)
      sign_out = jax.random.rademacher(k_out, (n, m.shape[1]), m.dtype)
      out.append(Flipout(m, delta, sign_in, sign_out))
      axes.append(Flipout(None, None, 0, 0))
    else:
      out.append(m + s * jax.random.normal(k, (n, *m.shape), m.dtype))
      axes.append(0)
  # A Flipout view is one leaf of the parameter structure: rebuild with it in place.
  return jax.tree.unflatten(treedef, out), jax.tree.unflatten(treedef, axes)


def draw(post: dict, key: jax.Array, n: int, mode: str) -> tuple[Tree, Tree]:
  """Weights for a batch of ``n`` examples and their ``vmap`` axes (see :func:`per_example`)."""
  if mode == "example":
    return sample_per_example(post, key, n), 0
  if mode == "minibatch":
    return sample(post, key), None
  if mode == "flipout":
    return flipout_weights(post, key, n)
  if mode == "mean":
    return post["mean"], None
  raise ConfigError(f"Unknown sampling mode {mode!r}; expected one of {SAMPLING_MODES}.")


def per_example(fn: Callable, weights: Tree, axes: Tree, *batched: Any) -> Any:
  """``fn(weights_b, *args_b)`` for every example ``b``, as one ``jax.vmap``.

  ``fn`` is written for a single example; ``axes`` (from :func:`draw`) says
  which parts of ``weights`` carry the batch axis.
  """
  return jax.vmap(fn, in_axes=(axes, *([0] * len(batched))))(weights, *batched)


# -- priors and KL -----------------------------------------------------------------
_LOG_2PI = math.log(2.0 * math.pi)


def _log(x):
  """``log x``: exact (``math``) for a Python number, traced for a swept one."""
  return math.log(x) if isinstance(x, (int, float)) else jnp.log(x)


def _gauss_logpdf(w, mu, log_sigma):
  return -0.5 * (_LOG_2PI + 2.0 * log_sigma + jnp.square((w - mu) * jnp.exp(-log_sigma)))


@dataclasses.dataclass(frozen=True)
class Gaussian:
  """``N(mu, sigma^2)`` on every weight. Notes 000: ``sigma = 1000`` (``log 1000``)."""
  sigma: float = 1.0
  mu: float = 0.0

  def log_prob(self, w: jax.Array) -> jax.Array:
    return _gauss_logpdf(w, self.mu, _log(self.sigma))


@dataclasses.dataclass(frozen=True)
class ScaleMixture:
  """``pi N(0, sigma1^2) + (1 - pi) N(0, sigma2^2)`` (Blundell et al. 2015)."""
  pi: float = 0.25
  sigma1: float = 1.0
  sigma2: float = math.exp(-6.0)

  def log_prob(self, w: jax.Array) -> jax.Array:
    a = _log(self.pi) + _gauss_logpdf(w, 0.0, _log(self.sigma1))
    b = _log(1.0 - self.pi) + _gauss_logpdf(w, 0.0, _log(self.sigma2))
    return jnp.logaddexp(a, b)


Prior = Union[Gaussian, ScaleMixture]


def make_prior(kind: str, *, sigma: float = 1.0, pi: float = 0.25, sigma1: float = 1.0,
               sigma2: float = math.exp(-6.0)) -> Prior:
  if kind == "gaussian":
    return Gaussian(sigma)
  if kind == "mixture":
    return ScaleMixture(pi, sigma1, sigma2)
  raise ConfigError(f"Unknown prior {kind!r}; expected 'gaussian' or 'mixture'.")


def kl_gaussian(post: dict, prior: Gaussian) -> jax.Array:
  """``KL(q || p)`` summed over all weights, in closed form:
  ``log(sp/sq) + (sq^2 + (m - mu_p)^2) / (2 sp^2) - 1/2`` per weight."""
  log_sp = _log(prior.sigma)

  def leaf(m, ls):
    per = (log_sp - ls) + (jnp.exp(2.0 * ls) + jnp.square(m - prior.mu)) / (2.0 * prior.sigma ** 2) - 0.5
    return jnp.sum(jnp.broadcast_to(per, m.shape))

  return sum(jax.tree.leaves(jax.tree.map(leaf, post["mean"], log_sigmas(post))))


def log_q(post: dict, w: Tree) -> jax.Array:
  terms = jax.tree.map(lambda x, m, ls: jnp.sum(_gauss_logpdf(x, m, ls)), w, post["mean"],
                       log_sigmas(post))
  return sum(jax.tree.leaves(terms))


def log_prior(prior: Prior, w: Tree) -> jax.Array:
  return sum(jax.tree.leaves(jax.tree.map(lambda x: jnp.sum(prior.log_prob(x)), w)))


def kl_monte_carlo(post: dict, prior: Prior, key: jax.Array, num_samples: int = 1) -> jax.Array:
  """Unbiased estimate ``mean_s [log q(w_s) - log p(w_s)]`` with ``w_s ~ q`` (reparameterized)."""
  def one(k):
    w = sample(post, k)
    return log_q(post, w) - log_prior(prior, w)
  return jnp.mean(jax.vmap(one)(jax.random.split(key, num_samples)))


def kl(post: dict, prior: Prior, key: jax.Array | None = None, *, form: str = "auto",
       num_samples: int = 1) -> jax.Array:
  """``KL(q || prior)``. ``form``: ``auto`` (closed when the prior is Gaussian, else
  Monte Carlo), ``closed`` or ``mc``; only the Monte Carlo form reads ``key``."""
  if form == "auto":
    form = "closed" if isinstance(prior, Gaussian) else "mc"
  if form == "closed":
    if not isinstance(prior, Gaussian):
      raise ConfigError("The closed-form KL needs a Gaussian prior; use form='mc'.")
    return kl_gaussian(post, prior)
  if form == "mc":
    if key is None:
      raise ConfigError(f"The Monte Carlo KL ({type(prior).__name__} prior) needs a key: "
                        "kl(post, prior, key).")
    return kl_monte_carlo(post, prior, key, num_samples)
  raise ConfigError(f"Unknown KL form {form!r}; expected auto, closed or mc.")


def elbo_loss(nll_sum: jax.Array, post: dict, prior: Prior, num_train_examples: int, *,
              batch_size: int, key: jax.Array | None = None, kl_weight: float = 1.0,
              form: str = "auto", num_samples: int = 1) -> jax.Array:
  """The negative ELBO per training example, estimated from one minibatch::

      nll_sum / batch_size + kl_weight * KL(q || prior) / num_train_examples

  ``nll_sum``: the minibatch's summed negative log-likelihood (each example scored
  with its own weight sample). The whole data set's ``-ELBO = N * E[nll] + KL``; divided
  by ``N`` the KL weighs ``1 / N`` against the mean per-example data term: summing the
  minibatch's NLL against the whole KL (or averaging both) over-weights the prior by
  ``N / B`` (or ``N``). Multiply by ``num_train_examples`` for the data set's bound."""
  if num_train_examples <= 0 or batch_size <= 0:
    raise ConfigError(f"elbo_loss: num_train_examples={num_train_examples} and "
                      f"batch_size={batch_size} must be positive.")
  divergence = kl(post, prior, key, form=form, num_samples=num_samples)
  return nll_sum / batch_size + kl_weight * divergence / num_train_examples
