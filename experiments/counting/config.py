"""Counting ones with an Elman RNN (notes 003; the Keras comparison of notes 002).

20 sequences of 10 random bits; the target is the number of ones. The linear
cell ``s_t = x_t*w_x + s_{t-1}*w_rec`` solves it exactly at w_x = w_rec = 1;
the cost is the notes' sum of squared errors of the final state, one full-batch
step per epoch, 2001 epochs.

Command:
  python -m experiments.counting.main \
      --config=experiments/counting/config.py:rmsprop --workdir=runs/counting/rmsprop
Variants (``config.py:<name>``):
  gd       gradient descent, lr 1e-5  -> cost 0.0647, w = (1.0584, 0.9877)  (notes: 0.0663, 1.0597, 0.9863)
  rmsprop  RMSProp, lr 1e-3 (default) -> cost 0.0044, w = (1.0006, 1.0005)  (notes: 0.0068, 0.9995, 0.9993)
  rprop    Rprop, initial step 1e-3   -> cost 2e-7,   w = (1.0001, 1.0000)  (Peter's notes: 1, 1)
  simple | lstm | gru   hidden 20 + dense read-out, Adam lr 1e-2, MSE -> train MSE 0.09 / 0.002 / 5e-5
Runtime: about 5 s of training each (11 s with start-up) on a 2-core CPU.
GD's result depends on the initial weights: 20 of 32 seeds end below 0.1 (README.md beside this file).
"""
import ml_collections

from lib.runtime import configs
from lib.train import optim, trainer

OPTIMIZER_VARIANTS = ("gd", "rmsprop", "rprop")
CELL_VARIANTS = ("simple", "lstm", "gru")
# One dict of dotted overrides per variant, applied to the base config below.
VARIANTS = {
    "gd": {"optimizer": optim.default_config("sgd", 1e-5)},
    "rmsprop": {},
    "rprop": {"optimizer": optim.default_config("rprop", 1e-3)},
    **{cell: {"model.cell": cell, "model.hidden": 20, "model.init": "default", "loss": "mse",
              "optimizer": optim.default_config("adam", 1e-2)} for cell in CELL_VARIANTS},
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = configs.start("counting", arg or "rmsprop", VARIANTS)
  c.seed = 1                       # parameters and per-step keys (see README.md beside this file: gd and the seed)
  c.data = ml_collections.ConfigDict(dict(
      num_samples=20, seq_len=10, seed=1,     # the notes' np.random.seed(1) data size
      batch_size=20,                          # = num_samples: full batch, as the notes
      eval_samples=200, long_seq_len=50,      # held-out data; long = extrapolation
  ))
  c.model = ml_collections.ConfigDict(dict(
      cell="linear", hidden=1, init="uniform:0.1", unroll=1,  # cell: any lib.nn.cells name
      scan="auto"))                # linear cells' scan (sequential | associative | chunked)
  c.loss = "sse"                    # 'sse' (the notes' cost) or 'mse'
  c.optimizer = optim.default_config("rmsprop", 1e-3)
  c.trainer = trainer.default_config(num_epochs=2001, log_every_steps=1, eval_every_steps=100,
                                     checkpoint_every_steps=500, flush_every=100)
  return configs.finish(c, VARIANTS)


def sweep(add, name: str = "") -> None:
  """Named sweeps for ``python -m launch.sweep --config=experiments/counting/config.py:rmsprop
  --sweep=<name> --out=runs/sweeps/counting_<name>``:
    lr      4 learning rates
    seeds   32 initialisations (the benchmark's sweep)
    ''      (default) 4 learning rates x 2 seeds
  """
  if name == "lr":
    add.grid("optimizer.lr", [1e-4, 3e-4, 1e-3, 3e-3])
  elif name == "seeds":
    add.grid("seed", list(range(1, 33)))
  elif name == "":
    add.grid("optimizer.lr", [1e-4, 3e-4, 1e-3, 3e-3])
    add.grid("seed", [1, 2])
  else:
    raise ValueError(f"Unknown counting sweep {name!r}; expected 'lr', 'seeds' or ''.")
