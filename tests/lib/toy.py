"""A toy experiment made of lib parts only, for the tests of lib's trainer and sweeps:
a linear recurrent cell summing 0/1 inputs, the cost a sum of squared errors of the
final state (with w_x = w_rec = 1 the state is the exact count). It follows the
experiment contract (``get_config``, ``build``, ``sweep``) without importing an experiment.
"""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lib.data import batching
from lib.metrics import Average
from lib.nn import cells, recurrence
from lib.runtime import configs, durations
from lib.train import optim, trainer
from lib.train.task import Built, Task

VARIANTS = {"rmsprop": {}, "gd": {"optimizer": optim.default_config("sgd", 1e-5)}}


def get_config(variant: str = "rmsprop") -> ml_collections.ConfigDict:
  c = configs.start("toy", variant, VARIANTS)
  c.seed = 1
  c.data = ml_collections.ConfigDict(dict(num=20, length=10, batch_size=20, seed=1))
  c.optimizer = optim.default_config("rmsprop", 1e-3)
  c.trainer = trainer.default_config(num_epochs=60, log_every_steps=1, eval_every_steps=100,
                                     checkpoint_every_steps=500, flush_every=100)
  return configs.finish(c, VARIANTS)


SWEEPS = {"": {"optimizer.lr": [1e-4, 3e-4, 1e-3, 3e-3], "seed": [1, 2]},
          "seeds": {"seed": list(range(1, 33))}}


def sweep(add, name: str = "") -> None:
  if name not in SWEEPS:
    raise ValueError(f"Unknown toy sweep {name!r}; expected one of {sorted(SWEEPS)}.")
  for key, values in SWEEPS[name].items():
    add.grid(key, values)


def bits(num: int, length: int, seed: int) -> dict:
  x_NxT = np.random.default_rng(seed).integers(0, 2, (num, length)).astype(np.float32)
  return {"x": x_NxT[..., None], "y": x_NxT.sum(1)}


class HeldOutMSE:
  def __init__(self, cell, data):
    x, y = jnp.asarray(data["x"]), jnp.asarray(data["y"])
    self._mse = jax.jit(lambda p: jnp.mean((_final(cell, p, x) - y) ** 2))

  def run(self, params):
    yield "mse", self._mse(params)


def _final(cell, params, x_NxTx1):
  carry, _ = recurrence.unroll(cell, params, x_NxTx1)
  return carry[:, 0]


def build(config: ml_collections.ConfigDict, data=None) -> Built:
  d = config.data
  train = data or bits(d.num, d.length, d.seed)
  source = batching.batches(train, d.batch_size, d.seed)
  config = durations.resolve(config, source.steps_per_epoch)
  cell = cells.linear(1)

  def loss_fn(params, batch, rng):
    err = _final(cell, params, batch["x"]) - batch["y"]
    cost = jnp.sum(err ** 2)
    w = {"w_x": params["w_x"].reshape(()), "w_rec": params["w_rec"].reshape(())}
    return cost, {"cost": cost, "mse": Average(cost, jnp.float32(err.size)), **w}

  def weights(params):
    return {"w_x": params["w_x"].reshape(()), "w_rec": params["w_rec"].reshape(())}

  task = Task(name=f"toy/{config.variant}", init_params=lambda key: cell.init(key, 1),
              loss_fn=loss_fn, train_batch=source,
              evaluators=(HeldOutMSE(cell, bits(100, d.length, d.seed + 1)),),
              summary_fn=weights, curve_metric="cost")
  return Built(task=task, config=config, model=cell, data=train)
