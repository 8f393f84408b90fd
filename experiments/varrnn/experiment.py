"""Glue of the variational-RNN experiment: objective, evaluation, run.

Objective per minibatch of B out of N training pairs (notes 000)::

    NLL(batch; w ~ q) * N / B  +  KL(q || prior)

an unbiased estimate of the negative ELBO of the whole training set (the
notes' "evidence"). The MAP twin minimises ``NLL * N / B + |w|^2 / (2 sigma_p^2)``.
"""
from __future__ import annotations

import functools
import json
import os
from typing import Iterable

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments.varrnn import inputs
from experiments.varrnn.model import BOW, PairRNN, kl_notes
from lib import metrics
from lib.data import batching
from lib.eval import scores
from lib.nn import cells, variational as vi
from lib.runtime import configs, durations, plotting, writers
from lib.sweeps import tunable
from lib.train import trainer
from lib.train.task import Built, Task

INPUTS = ("ids1", "mask1", "ids2", "mask2")
PREDICTORS = ("sample", "mean", "average")


def is_map(config) -> bool:
  return config.vi.sampling == "none"


def make_model(config, ds: inputs.Dataset) -> PairRNN:
  m = config.model
  fixed = m.embeddings == "fixed"
  return PairRNN(input_dim=ds.vectors.shape[1] if fixed else m.input_dim, hidden=m.hidden,
                 num_classes=ds.num_classes, vocab_size=0 if fixed else len(ds.vocab),
                 cell=m.cell, init=m.init, unroll=m.unroll, features=m.features)


def make_prior(v, sigma=None) -> vi.Prior:
  """``sigma``: the Gaussian prior's, when swept (traced); else ``v.prior_sigma``."""
  return vi.make_prior(v.prior, sigma=v.prior_sigma if sigma is None else sigma,
                       pi=v.mixture_pi, sigma1=v.mixture_sigma1, sigma2=v.mixture_sigma2)


def init_fn(model: PairRNN, config):
  def init(key):
    mean = model.init_params(key)
    if is_map(config):
      return {"mean": mean}
    return vi.init_posterior(mean, config.vi.log_sigma_init, config.vi.sigma)
  return init


def loss_fn(model: PairRNN, vectors, config, num_train: int):
  """``(params, batch, rng, hp) -> (objective, metrics)`` for the trainer; ``hp``:
  the :data:`TUNABLE` values (default: the config's)."""
  logits_one = functools.partial(model.logits, vectors=vectors)
  mode = "mean" if is_map(config) else config.vi.sampling
  defaults = tunable.hparams(config, LOSS_TUNABLE)

  def loss(post, batch, rng, hp=None):
    hp = defaults if hp is None else hp
    prior = make_prior(config.vi, hp["vi.prior_sigma"])
    y = batch["y"]
    B = y.shape[0]
    k_w, k_kl = jax.random.split(rng)
    weights, axes = vi.draw(post, k_w, B, mode)
    logits_BxC = vi.per_example(logits_one, weights, axes, {k: batch[k] for k in INPUTS})
    nll_B = -jnp.take_along_axis(jax.nn.log_softmax(logits_BxC), y[:, None], 1)[:, 0]
    data_term = nll_B.sum() * (num_train / B)
    out = {"nll": metrics.Average.of(nll_B.sum(), B),
           "acc": metrics.Average.of((logits_BxC.argmax(-1) == y).sum(), B)}
    if is_map(config):
      penalty = sum(jnp.sum(jnp.square(w)) for w in jax.tree.leaves(post["mean"])) / (
          2.0 * hp["vi.prior_sigma"] ** 2)
      return data_term + penalty, out
    if config.vi.kl == "notes":
      kl = kl_notes(post, prior)
    else:
      kl = vi.kl(post, prior, k_kl, form=config.vi.kl, num_samples=config.vi.kl_samples)
    out.update(neg_elbo=data_term + kl, kl=kl,
               sigma=jnp.mean(jnp.stack([jnp.mean(s) for s in jax.tree.leaves(vi.sigmas(post))])))
    return data_term + batch["kl_weight"] * hp["vi.kl_weight"] * kl, out

  return loss


class TrainBatches:
  """Epoch minibatches plus the step's KL weight (annealing is a function of the step)."""

  def __init__(self, arrays, batch_size: int, seed: int, anneal_epochs: int):
    self.base = batching.EpochBatches(arrays, batch_size, seed)
    self.steps_per_epoch = self.base.steps_per_epoch
    self.anneal_steps = anneal_epochs * self.steps_per_epoch

  def __call__(self, step: int) -> dict:
    b = self.base(step)
    w = min(1.0, (step + 1) / self.anneal_steps) if self.anneal_steps else 1.0
    return {**b, "kl_weight": np.float32(w)}


class Evaluator:
  """Balanced-draw test macro-F1 (notes' ``my_eval``), train macro-F1, ECE and NLL,
  for each predictor. The sampling noise is fixed per run (the same key every
  evaluation), so successive evaluations differ only by the parameters."""

  def __init__(self, model: PairRNN, vectors, ds: inputs.Dataset, config):
    self.ds, self.config = ds, config
    self.map = is_map(config)
    self.predictors = ("mean",) if self.map else PREDICTORS
    self.headline = "mean" if self.map else config.eval.predictor
    self.draws = scores.balanced_draws(ds.test["y"], ds.num_classes, config.data.eval_draws,
                                       config.data.draw_seed)
    self.chunk = config.data.eval_batch_size
    self.key = jax.random.fold_in(jax.random.key(config.eval.seed), 10_000)
    logits_one = functools.partial(model.logits, vectors=vectors)
    self.num_samples = config.eval.num_samples

    def probs(post, inputs, key):
      mean = jax.nn.softmax(vi.per_example(logits_one, post["mean"], None, inputs))
      if self.map:
        return {"mean": mean}
      w, ax = vi.draw(post, key, inputs["ids1"].shape[0], "example")
      return {"mean": mean, "sample": jax.nn.softmax(vi.per_example(logits_one, w, ax, inputs))}

    self._probs = probs
    self._outputs = jax.jit(self.outputs)  # one compilation serves every predictor

  def _chunks(self, arrays) -> dict:
    """The inputs in fixed-size chunks, ``n_chunks x chunk x ...``; the last wraps."""
    n = len(arrays["y"])
    idx = np.arange(-(-n // self.chunk) * self.chunk) % n
    return {k: jnp.asarray(arrays[k][idx].reshape(-1, self.chunk, *arrays[k].shape[1:]))
            for k in INPUTS}

  def _samples(self, post, chunks, index) -> dict[str, jax.Array]:
    """The ``mean`` and ``sample`` probabilities of each chunk (``n_chunks x chunk x C``);
    chunk ``j`` of a split (``index``) draws its samples with ``fold_in(key, j)``."""
    return jax.lax.map(lambda a: self._probs(post, a[1], jax.random.fold_in(self.key, a[0])),
                       (index, chunks))

  def _average(self, post, chunks) -> jax.Array:
    """The ``average`` predictor: S more per-example samples of each chunk, averaged
    (sample ``s`` of chunk ``j`` drawn with ``fold_in(fold_in(key, j), s + 1)``)."""
    def one(a):
      key = jax.random.fold_in(self.key, a[0])
      keys = jax.vmap(lambda s: jax.random.fold_in(key, s + 1))(jnp.arange(self.num_samples))
      return jax.lax.map(lambda k: self._probs(post, a[1], k)["sample"], keys).mean(0)
    return jax.lax.map(one, (jnp.arange(len(chunks["ids1"])), chunks))

  def outputs(self, post) -> dict:
    """The probabilities :meth:`score` reads, test and train chunks in one pass
    (traceable: the sweep backend vmaps it over trials). Train F1 of the 'average'
    predictor is left out: S samples of every training pair cost more than the rest
    of the evaluation together."""
    test, train = self._chunks(self.ds.test), self._chunks(self.ds.train)
    a, b = len(test["ids1"]), len(train["ids1"])
    got = self._samples(post, {k: jnp.concatenate([test[k], train[k]]) for k in INPUTS},
                        jnp.concatenate([jnp.arange(a), jnp.arange(b)]))
    out = {"test": {p: _rows(v[:a], len(self.ds.test["y"])) for p, v in got.items()},
           "train": {p: _rows(v[a:], len(self.ds.train["y"])) for p, v in got.items()}}
    if not self.map:
      out["test"]["average"] = _rows(self._average(post, test), len(self.ds.test["y"]))
    return out

  def predict(self, post, arrays, average: bool = True) -> dict[str, np.ndarray]:
    """``{predictor: probs_NxC}`` of ``arrays`` (a split of the data set)."""
    def probs(post):
      chunks, n = self._chunks(arrays), len(arrays["y"])
      got = {p: _rows(v, n) for p, v in
             self._samples(post, chunks, jnp.arange(len(chunks["ids1"]))).items()}
      if average and not self.map:
        got["average"] = _rows(self._average(post, chunks), n)
      return got
    return {p: np.asarray(v) for p, v in jax.jit(probs)(post).items()}

  def run(self, post):
    yield from self.score(self._outputs(post))

  def score(self, outputs) -> Iterable[tuple[str, float]]:
    """The ``(name, value)`` pairs of :meth:`outputs`' probabilities (numpy, on the host)."""
    test = {p: np.asarray(v) for p, v in outputs["test"].items()}
    train = {p: np.asarray(v) for p, v in outputs["train"].items()}
    yield from self._scores(test, train).items()

  def _scores(self, test: dict, train: dict) -> dict[str, float]:
    C, bins = self.ds.num_classes, self.config.eval.ece_bins
    y, y_tr = self.ds.test["y"], self.ds.train["y"]
    out = {}
    for p in self.predictors:
      f1, f1_std = scores.balanced_f1(y, test[p].argmax(1), self.draws, C)
      out.update({f"{p}/f1_bal": f1, f"{p}/f1_bal_std": f1_std,
                  f"{p}/ece": scores.expected_calibration_error(test[p], y, bins),
                  f"{p}/nll": scores.nll(test[p], y),
                  f"{p}/acc": float((test[p].argmax(1) == y).mean())})
      if p in train:
        out[f"{p}/train_f1"] = scores.macro_f1(y_tr, train[p].argmax(1), C)
    for k in ("f1_bal", "f1_bal_std", "ece", "nll", "acc"):
      out[k] = out[f"{self.headline}/{k}"]
    out["train_f1"] = out[f"{'mean' if self.headline == 'average' else self.headline}/train_f1"]
    return out


def _rows(v_KxNxC: jax.Array, n: int) -> jax.Array:
  """Chunks of rows (``K x N x C``) as their first ``n`` rows (``n x C``)."""
  return v_KxNxC.reshape(-1, v_KxNxC.shape[-1])[:n]


# Values that would make a run meaningless, refused before anything starts.
CONFIG_RULES = dict(
    positive=("data.num", "data.min_len", "data.num_classes", "data.batch_size",
              "data.eval_draws", "data.eval_batch_size", "data.min_count", "model.input_dim",
              "model.hidden", "model.unroll", "vi.prior_sigma", "vi.kl_samples",
              "eval.num_samples", "eval.ece_bins"),
    nonnegative=("data.max_len", "vi.kl_anneal_epochs", "vi.kl_weight"),
    fractions=("data.test_fraction",),
    choices={"data.format": ("generated", "pairs", "stsb", "sick"),
             "model.cell": (*cells.choices(), BOW), "model.features": ("concat", "match"),
             "model.embeddings": ("fixed", "learned"),
             "vi.sampling": ("example", "minibatch", "flipout", "none"),
             "vi.sigma": ("shared", "group", "weight"), "vi.prior": ("gaussian", "mixture"),
             "vi.kl": ("auto", "closed", "mc", "notes"),
             "eval.predictor": ("sample", "mean", "average")})


# Sweep keys (lib.sweeps.tunable): the loss reads the KL weight and the prior's sigma
# as traced values; the initial log sigma sets each trial's own initial parameters.
LOSS_TUNABLE = ("vi.kl_weight", "vi.prior_sigma")
TUNABLE = LOSS_TUNABLE + ("vi.log_sigma_init",)
STRUCTURAL = ("model.hidden", "model.cell", "model.features", "model.embeddings",
              "model.init", "model.unroll", "vi.sampling", "vi.sigma", "vi.prior", "vi.kl",
              "vi.kl_samples", "data.batch_size", "data.shuffle_seed", "eval.predictor",
              "eval.seed")


def build(config: ml_collections.ConfigDict, data: inputs.Dataset | None = None) -> Built:
  """The variational (or MAP) task; ``data``: a :func:`inputs.load` result."""
  configs.check(config, **CONFIG_RULES)
  ds = data or inputs.load(config.data, config.model.embeddings, config.model.input_dim)
  model = make_model(config, ds)
  vectors = None if ds.vectors is None else jnp.asarray(ds.vectors)
  num_train = len(ds.train["y"])
  batches = TrainBatches(ds.train, config.data.batch_size, batching.order_seed(config),
                         config.vi.kl_anneal_epochs)
  config = durations.resolve(config, batches.steps_per_epoch,
                             examples_per_step=config.data.batch_size)
  task = Task(
      name=f"varrnn/{config.variant}", init_params=init_fn(model, config),
      loss_fn=loss_fn(model, vectors, config, num_train), train_batch=batches,
      evaluators=(Evaluator(model, vectors, ds, config),), curve_metric="loss",
      hparams=tunable.hparams(config, LOSS_TUNABLE))
  return Built(task=task, config=config, model=model, data=ds)


def plot(workdir: str, steps_per_epoch: int, title: str) -> str:
  """The notes' log as a figure: evidence per epoch, train and balanced test macro-F1."""
  curves = writers.epoch_curves(workdir, steps_per_epoch)
  evidence = curves.get("train/neg_elbo") or curves.get("train/loss")
  f1 = {name: curves[key] for name, key in (("train", "eval/train_f1"),
                                            ("test, balanced draws", "eval/f1_bal"))
        if key in curves}
  return plotting.plot_panels(
      [("negative ELBO (the notes' evidence)", "per epoch", {"train": evidence}),
       ("macro-F1", "F1", f1)], os.path.join(workdir, "curves.png"), title=title)


def run(config: ml_collections.ConfigDict, workdir: str, *, data: inputs.Dataset | None = None,
        verbose: bool = True) -> dict:
  """Trains (resuming), evaluates the final parameters, writes ``report.json`` and ``curves.png``."""
  built = build(config, data)
  task, config, ds = built.task, built.config, built.data
  epochs = config.trainer.num_steps / task.train_batch.steps_per_epoch
  evaluator = task.evaluators[0]
  n_weights = vi.num_weights(task.init_params(jax.random.key(0)))
  spe = task.train_batch.steps_per_epoch
  msg = f"{task.name}: {ds.info}; {n_weights} parameters, {spe} steps per epoch."
  logging.info(msg)
  if verbose:
    print(msg, flush=True)
  summary = trainer.fit(task, config, workdir)
  # The trainer evaluates the final parameters (also when a finished run is re-run).
  final = {k[len("eval/"):]: v for k, v in summary["final"].items() if k.startswith("eval/")}
  figure = plot(workdir, spe, f"{task.name}: {ds.info.split(':')[0]}")
  report = {"variant": config.variant, "epochs": epochs, "sampling": config.vi.sampling,
            "predictor": evaluator.headline, "parameters": n_weights,
            "test_pairs": len(ds.test["y"]), **final,
            "neg_elbo": summary["final"].get("train/neg_elbo"),
            "sigma": summary["final"].get("train/sigma"),
            "wall_time_s": summary["wall_time_s"], "status": summary["status"], "figure": figure}
  with open(os.path.join(workdir, "report.json"), "w") as f:
    json.dump(report, f, indent=2)
  if verbose:
    print(f"{task.name}: balanced test macro-F1 {final['f1_bal']:.3f} ± {final['f1_bal_std']:.3f} "
          f"({evaluator.headline} predictor), train macro-F1 {final['train_f1']:.3f}, ECE "
          f"{final['ece']:.3f}, after {epochs:g} epochs ({summary['wall_time_s']:.0f} s). "
          f"Curves: {figure}")
  return {**summary, "report": report}
