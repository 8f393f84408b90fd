"""Data, model and task glue of the counting experiment."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lib.data import batching as data_lib
from lib.metrics import Average
from lib.nn import cells, initializers, recurrence
from lib.runtime import configs, durations
from lib.train import trainer
from lib.train.task import Built, Task


def make_data(num_samples: int, seq_len: int, seed: int) -> dict[str, np.ndarray]:
  """``x``: (N, T, 1) random bits (the notes' ``np.around(rand)``); ``y``: their count."""
  rng = np.random.default_rng(seed)
  x = rng.integers(0, 2, size=(num_samples, seq_len)).astype(np.float32)
  return {"x": x[..., None], "y": x.sum(axis=1)}


def make_cell(model_cfg: ml_collections.ConfigDict) -> cells.Cell:
  """``model.cell`` from the registry; ``model.init`` (unless ``default``) on its kernels."""
  kwargs = {} if model_cfg.init == "default" else dict(
      kernel_init=model_cfg.init, recurrent_init=model_cfg.init)
  return cells.make_supported(model_cfg.cell, model_cfg.hidden, scan=model_cfg.scan, **kwargs)


def init_params(cell: cells.Cell, key: jax.Array) -> dict:
  kc, kd = jax.random.split(key)
  params = {"cell": cell.init(kc, 1)}
  if not _is_linear(cell):  # dense read-out, as the Keras models of notes 002
    params["out"] = {"w": initializers.glorot_uniform()(kd, (cell.hidden, 1)),
                     "b": jnp.zeros((1,))}
  return params


def _is_linear(cell) -> bool:
  """The notes' linear cell (either form): its state is the count (``W_out = 1``)."""
  return isinstance(cell, cells.Linear) or (type(cell) is cells.Elman and
                                            cell.activation == "identity")


def predict(cell: cells.Cell, params: dict, x_BxTx1: jax.Array, unroll: int = 1) -> jax.Array:
  """The count estimate per sequence: the final state (linear) or a dense read-out."""
  carry, _ = recurrence.unroll(cell, params["cell"], x_BxTx1, unroll=unroll)
  h = cell.output(carry)
  if "out" in params:
    return (h @ params["out"]["w"] + params["out"]["b"])[:, 0]
  return h[:, 0]  # W_out = 1 fixed, as the notes


def sse(cell: cells.Cell, params: dict, x_BxTx1: jax.Array, y_B: jax.Array, unroll: int = 1):
  """The notes' cost: the sum of squared errors of the count estimates."""
  return jnp.sum((predict(cell, params, x_BxTx1, unroll) - y_B) ** 2)


def weights(params: dict) -> dict[str, float]:
  """The linear cell's two weights (the notes print these)."""
  c = params["cell"]
  if c["w_x"].size != 1 or "w_rec" not in c or c["w_rec"].size != 1:
    return {}
  return {"w_x": c["w_x"].reshape(()), "w_rec": c["w_rec"].reshape(())}


class HeldOut:
  """Test MSE and rounded-count accuracy on held-out sequences of the training
  length (``mse``, ``acc``) and five times longer (``long_mse``, ``long_acc``)."""

  def __init__(self, cell: cells.Cell, test: dict, long: dict, unroll: int):
    def measure(params):
      out = {}
      for name, ds in (("", test), ("long_", long)):
        pred = predict(cell, params, ds["x"], unroll)
        out[f"{name}mse"] = jnp.mean((pred - ds["y"]) ** 2)
        out[f"{name}acc"] = jnp.mean(jnp.round(pred) == ds["y"])
      return out
    self._measure = jax.jit(measure)

  def run(self, params):
    yield from self._measure(params).items()


# Values that would make a run meaningless, refused before anything starts.
CONFIG_RULES = dict(
    positive=("data.num_samples", "data.seq_len", "data.batch_size", "data.eval_samples",
              "data.long_seq_len", "model.hidden", "model.unroll"),
    choices={"loss": ("sse", "mse"), **cells.config_choices("cell", "scan")})


# Sweep keys (lib.sweeps.tunable): beyond seed and the optimizer's floats, these
# split a vmapped sweep into one program per value.
STRUCTURAL = ("model.cell", "model.hidden", "model.init", "model.unroll", "model.scan", "data.num_samples",
              "data.seq_len", "data.batch_size", "data.seed", "loss")


def build(config: ml_collections.ConfigDict, data: dict | None = None) -> Built:
  """``data``: :func:`make_data` arrays to train on (default: from ``config.data``)."""
  configs.check(config, **CONFIG_RULES)
  d = config.data
  train = data if data is not None else make_data(d.num_samples, d.seq_len, d.seed)
  test = {k: jnp.asarray(v) for k, v in make_data(d.eval_samples, d.seq_len, d.seed + 1).items()}
  long = {k: jnp.asarray(v) for k, v in make_data(d.eval_samples, d.long_seq_len, d.seed + 2).items()}
  source = data_lib.batches(train, d.batch_size, d.seed)
  config = durations.resolve(config, source.steps_per_epoch, examples_per_step=d.batch_size)
  cell = make_cell(config.model)
  unroll = config.model.unroll

  def loss_fn(params, batch, rng):
    del rng  # deterministic model
    cost = sse(cell, params, batch["x"], batch["y"], unroll)
    n = batch["y"].shape[0]
    objective = cost if config.loss == "sse" else cost / n
    metrics = {"cost": cost, "mse": Average(cost, jnp.float32(n))}
    metrics.update(weights(params))  # the (w_x, w_rec) path, for the surface plot
    return objective, metrics

  task = Task(name=f"counting/{config.variant}", init_params=lambda key: init_params(cell, key),
              loss_fn=loss_fn, train_batch=source, evaluators=(HeldOut(cell, test, long, unroll),),
              summary_fn=weights, curve_metric="cost")
  return Built(task=task, config=config, model=cell, data=train)


def cost_surface(x_NxTx1: np.ndarray, y_N: np.ndarray, wx: np.ndarray, wrec: np.ndarray) -> np.ndarray:
  """The notes' cost over a (w_rec, w_x) grid, one vmap over the grid."""
  cell = cells.linear(1)
  x, y = jnp.asarray(x_NxTx1), jnp.asarray(y_N)

  def cost(a, b):
    return sse(cell, {"cell": {"w_x": a.reshape(1, 1), "w_rec": b.reshape(1)}}, x, y)

  WX, WR = jnp.meshgrid(jnp.asarray(wx), jnp.asarray(wrec))
  return np.asarray(jax.jit(jax.vmap(cost))(WX.ravel(), WR.ravel())).reshape(WX.shape)


def run(config: ml_collections.ConfigDict, workdir: str, *, data: dict | None = None,
        verbose: bool = True) -> dict:
  """Trains one variant and prints the notes' lines (initial/final weights, cost every 100)."""
  built = build(config, data)
  task = built.task
  init_w = weights(task.init_params(jax.random.split(jax.random.key(config.seed))[0]))
  summary = trainer.fit(task, built.config, workdir)
  if verbose:
    _print_like_notes(workdir, init_w, summary)
  return summary


def _print_like_notes(workdir: str, init_w: dict, summary: dict) -> None:
  from lib.runtime import writers
  if init_w:
    print(f"Initial weights: wx = {float(init_w['w_x']):8.4f}, wRec = {float(init_w['w_rec']):8.4f}")
  for rec in writers.read_records(workdir, "train"):
    if rec["step"] % 100 == 0:
      print(f"epoch[{rec['step']:5d}] : cost ={float(rec['cost']):8.4f}")
  w = summary["extra"]
  if w:
    print(f"Final weights : wx = {w['w_x']:8.4f}, wRec = {w['w_rec']:8.4f}")
  print(f"{summary['experiment']}: {summary['status']} after {summary['steps']} steps in "
        f"{summary['wall_time_s']:.1f} s; eval mse {summary['final'].get('eval/mse', float('nan')):.4g}, "
        f"long-sequence mse {summary['final'].get('eval/long_mse', float('nan')):.4g}")


def gd_seed_scan(config: ml_collections.ConfigDict, num_seeds: int = 32) -> dict[str, np.ndarray]:
  """Plain gradient descent from ``num_seeds`` initialisations, trained together.

  One jitted program: ``vmap`` over seeds of a ``scan`` over epochs. Shows how
  often the notes' lr=1e-5 run escapes the plateau within the run's length
  (``trainer.num_*``; one full-batch step is one epoch).
  """
  d = config.data
  num_steps = durations.resolve(config, 1, examples_per_step=d.num_samples).trainer.num_steps
  data = make_data(d.num_samples, d.seq_len, d.seed)
  x, y = jnp.asarray(data["x"]), jnp.asarray(data["y"])
  cell, lr = cells.linear(1, init=config.model.init), config.optimizer.lr

  def cost(p):
    return sse(cell, p, x, y)

  def one(seed):
    p = init_params(cell, jax.random.split(jax.random.key(seed))[0])

    def epoch(p, _):
      return jax.tree.map(lambda w, g: w - lr * g, p, jax.grad(cost)(p)), None

    p_end, _ = jax.lax.scan(epoch, p, None, length=num_steps)
    w0 = weights(p)
    return w0["w_x"], w0["w_rec"], cost(p_end)

  w_x0, w_rec0, final = jax.jit(jax.vmap(one))(jnp.arange(num_seeds))
  return {"w_x0": np.asarray(w_x0), "w_rec0": np.asarray(w_rec0), "final_cost": np.asarray(final)}
