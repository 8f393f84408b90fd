"""The long-range tasks under the experiment contract: any cell of the registry, a
fresh generated batch every step, held-out test sets at the configured lengths."""
from __future__ import annotations

import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments.long_range import tasks
from lib.data import batching
from lib.errors import ConfigError
from lib.metrics import Average
from lib.nn import cells, initializers, stacks
from lib.runtime import configs, durations
from lib.train import trainer
from lib.train.task import Built, Task


@dataclasses.dataclass(frozen=True)
class Model:
  """Inputs (token embeddings, or features through a dense layer of ``embed_dim``; 0:
  the raw features) -> ``layers`` cells -> a read-out per step.

  ``readout='state'``: the output is the top layer's first unit, with no weights
  (notes 003's ``W_out = 1``); else a dense layer to ``out_dim`` (classes, or 1 value).
  """
  cell: str
  hidden: int
  in_dim: int           # features per step, or the vocabulary (token inputs)
  out_dim: int
  tokens: bool = False
  layers: int = 1
  embed_dim: int = 32   # token embedding, or the features' dense layer (0: none)
  readout: str = "dense"
  dtype: Optional[str] = None
  param_dtype: str = "float32"
  scan: str = "auto"
  options: tuple = ()   # extra cell options, as (name, value) pairs

  def cells(self) -> list[cells.Cell]:
    return [cells.make_supported(self.cell, self.hidden, dtype=self.dtype, scan=self.scan,
                                 param_dtype=self.param_dtype, **dict(self.options))
            for _ in range(self.layers)]

  def init(self, key: jax.Array) -> dict:
    k_e, k_c, k_o = jax.random.split(key, 3)
    width = self.embed_dim or self.in_dim
    params = {"layers": stacks.init_stack(self.cells(), k_c, width)}
    if self.tokens:
      params["embed"] = initializers.normal(1.0)(k_e, (self.in_dim, self.embed_dim))
    elif self.embed_dim:  # features -> embed_dim, shared by every cell
      params["embed"] = {"w": initializers.get("glorot_uniform")(k_e, (self.in_dim, self.embed_dim)),
                         "b": jnp.zeros((self.embed_dim,))}
    if self.readout == "dense":
      params["out"] = {"w": initializers.get("glorot_uniform")(k_o, (self.hidden, self.out_dim)),
                       "b": jnp.zeros((self.out_dim,))}
    return jax.tree.map(lambda v: v.astype(self.param_dtype), params)

  def apply(self, params: dict, x, mask_BxT) -> jax.Array:
    """Outputs per step: ``B x T x out_dim`` (dense), or ``B x T x 1`` (state), in at
    least float32."""
    if self.tokens:
      h = params["embed"][x]
    elif self.embed_dim:
      h = x.astype(self.param_dtype) @ params["embed"]["w"] + params["embed"]["b"]
    else:
      h = x.astype(self.param_dtype)
    _, h = stacks.stack(self.cells(), params["layers"], h, mask_BxT=mask_BxT)
    h = h.astype(jnp.promote_types(h.dtype, jnp.float32))
    if self.readout == "state":
      return h[..., :1]
    return h @ params["out"]["w"] + params["out"]["b"]


def make_model(config: ml_collections.ConfigDict) -> Model:
  task, m, d = config.task, config.model, config.data
  vocab = {"copying": d.vocab + 2, "mqar": d.mqar_vocab}.get(task, 0)
  out_dim = {"copying": d.vocab, "mqar": d.mqar_vocab, "parity": 2}.get(task, 1)
  features = {"adding": 2}.get(task, 1)
  return Model(cell=m.cell, hidden=m.hidden, in_dim=vocab or features, out_dim=out_dim,
               tokens=bool(vocab), layers=m.layers, embed_dim=m.embed_dim, readout=m.readout,
               dtype=m.dtype, param_dtype=m.param_dtype, scan=m.scan)


def generate(config: ml_collections.ConfigDict, n: int, T: int, seed: int, index: int,
             pairs: Optional[int] = None) -> dict[str, np.ndarray]:
  """``n`` examples of the config's task at length ``T`` (batch ``index`` of ``seed``)."""
  d, task = config.data, config.task
  options = {"copying": dict(tokens=d.tokens, vocab=d.vocab),
             "mqar": dict(pairs=pairs or d.pairs, vocab=d.mqar_vocab)}.get(task, {})
  if task == "parity" and T > d.train_len:  # held out: only strings longer than training's
    options = dict(min_len=d.train_len + 1)
  return tasks.GENERATORS[task](n, T, seed, index, **options)


def scores(model: Model, task: str, params, batch):
  """``{'loss', 'mse' or 'acc'}`` as sums and counts over the scored positions."""
  out = model.apply(params, batch["x"], batch["mask"])
  w = batch["w"]
  n = w.sum()
  if task in tasks.REGRESSION:
    se = ((out[..., 0] - batch["y"]) ** 2 * w).sum()
    return {"loss": Average(se, n), "mse": Average(se, n)}
  lp = jax.nn.log_softmax(out)
  nll = -(jnp.take_along_axis(lp, batch["y"][..., None], -1)[..., 0] * w).sum()
  hits = ((out.argmax(-1) == batch["y"]) * w).sum()
  return {"loss": Average(nll, n), "acc": Average(hits, n)}


class HeldOut:
  """The metric (``mse`` or ``acc``) of each test set, named ``<metric>@<T>`` (MQAR:
  ``acc@<T>x<pairs>``)."""

  def __init__(self, model: Model, config: ml_collections.ConfigDict):
    d = config.data
    sets = {}
    for T in d.test_lens:
      for pairs in (d.test_pairs if config.task == "mqar" else (None,)):
        if pairs is not None and 4 * pairs > T:
          continue
        name = f"@{T}" + (f"x{pairs}" if pairs else "")
        sets[name] = {k: jnp.asarray(v) for k, v in
                      generate(config, d.test_size, T, d.seed + 1, 0, pairs).items()}
    metric = "mse" if config.task in tasks.REGRESSION else "acc"
    self._measure = jax.jit(lambda p: {metric + k: scores(model, config.task, p, b)[metric].compute()
                                       for k, b in sets.items()})

  def run(self, params):
    yield from self._measure(params).items()


class Batches:
  """A fresh generated batch per step: ``generate(batch_size, train_len, data.seed, step)``."""
  steps_per_epoch = 1

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config

  def __call__(self, step: int) -> dict[str, np.ndarray]:
    d = self.config.data
    return generate(self.config, d.batch_size, d.train_len, d.seed, step)


def train_batches(config: ml_collections.ConfigDict):
  """Fresh batches (``data.train_size = 0``), or minibatches of one generated training
  set of ``data.train_size`` examples (notes 003 train on 20 sequences, full batch)."""
  d = config.data
  if not d.train_size:
    return Batches(config)
  return batching.batches(generate(config, d.train_size, d.train_len, d.seed, 0), d.batch_size,
                          d.seed)


CONFIG_RULES = dict(
    nonnegative=("data.train_size", "model.embed_dim"),
    positive=("data.train_len", "data.test_size", "data.batch_size", "data.tokens", "data.vocab",
              "data.pairs", "data.mqar_vocab", "model.hidden", "model.layers"),
    choices={"task": tasks.TASKS, "model.readout": ("dense", "state"),
             "model.param_dtype": ("float32", "float64"),
             **cells.config_choices("cell", "scan", "dtype")})

# Sweep keys (lib.sweeps.tunable): beyond seed and the optimizer's floats, these split a
# vmapped sweep into one program per value.
STRUCTURAL = ("task", "model.cell", "model.hidden", "model.layers", "model.embed_dim",
              "model.readout", "model.dtype", "model.param_dtype", "model.scan", "data.train_len", "data.train_size", "data.batch_size",
              "data.seed", "data.tokens", "data.vocab", "data.pairs", "data.mqar_vocab")


def build(config: ml_collections.ConfigDict, data=None) -> Built:
  """``data`` is unused: every batch is generated from ``data.seed`` and the step."""
  del data
  configs.check(config, **CONFIG_RULES)
  if config.model.readout == "state" and config.task not in tasks.REGRESSION:
    raise ConfigError("model.readout='state' reads a value: it needs adding or counting.")
  if _needs_x64(config) and not jax.config.jax_enable_x64:
    raise ConfigError("model.dtype / model.param_dtype float64 needs --jax_enable_x64=True "
                      "(experiment.run sets it for its own run).")
  if config.task in ("copying", "mqar") and not config.model.embed_dim:
    raise ConfigError(f"{config.task} reads tokens: model.embed_dim must be positive.")
  source = train_batches(config)
  config = durations.resolve(config, source.steps_per_epoch,
                             examples_per_step=config.data.batch_size)
  model = make_model(config)

  def loss_fn(params, batch, rng):
    del rng
    metrics = scores(model, config.task, params, batch)
    return metrics["loss"].compute(), metrics

  task = Task(name=f"long_range/{config.variant}", init_params=model.init, loss_fn=loss_fn,
              train_batch=source, evaluators=(HeldOut(model, config),))
  return Built(task=task, config=config, model=model)


def _needs_x64(config) -> bool:
  return "float64" in (config.model.dtype, config.model.param_dtype)


def run(config: ml_collections.ConfigDict, workdir: str, *, data=None, verbose: bool = True) -> dict:
  """Trains one task; a float64 model runs with JAX's 64-bit types on (for this run only)."""
  with jax.enable_x64(_needs_x64(config) or bool(jax.config.jax_enable_x64)):
    built = build(config, data)
    summary = trainer.fit(built.task, built.config, workdir)
  if verbose:
    final = {k: round(float(v), 4) for k, v in summary["final"].items() if k.startswith("eval/")}
    print(f"{summary['experiment']} ({config.model.cell}): {summary['status']} after "
          f"{summary['steps']} steps in {summary['wall_time_s']:.1f} s; {final}")
  return summary
