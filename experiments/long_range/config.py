"""Long-range tasks for every cell of the registry (``model.cell``): adding, selective
copying, multi-query associative recall, parity and counting far past training.

Command:
  python -m experiments.long_range.main --config=experiments/long_range/config.py:adding_100 \
      --config.model.cell=lru --workdir=runs/long_range/adding_100/lru
Variants (``config.py:<name>``; data generated on the fly, fixed seeds, held-out test sets):
  adding_100, adding_500, adding_1000   the adding problem at T = 100 / 500 / 1,000
                                        (MSE; predicting 1 scores 0.167)
  copying_256, copying_1024             selective copying of 16 tokens (vocabulary 16)
                                        among 256 / 1,024 steps (per-token accuracy)
  mqar                                  Zoology's MQAR: T = 64, 4-16 key-value pairs in
                                        training, vocabulary 512; tested at T = 64 and 256
                                        with 4, 8 and 16 pairs (accuracy at the queries)
  parity                                parity of 1-40 bits, tested on 41-256 (accuracy)
  counting                              count the ones of 10 bits (20 training sequences);
                                        tested on 50 and 1,000 (MSE)
  counting_notes                        the same in notes 003's setting: the linear cell
                                        reading its state (W_out = 1), Rprop, float64 ->
                                        MSE 0 at 1,000 steps (7 s)
Runtime: 300-2,000 steps, a few seconds to a few minutes per cell on a 2-core CPU
(README.md beside this file has the table over every cell, each lr picked by a vmapped
sweep: python -m experiments.long_range.table).
"""
import ml_collections

from lib.runtime import configs
from lib.train import optim, trainer

# name -> (task, train length, test lengths, steps, batch, task options)
SETTINGS = {
    "adding_100": ("adding", 100, (100,), 600, 16, {}),
    "adding_500": ("adding", 500, (500,), 300, 16, {}),
    "adding_1000": ("adding", 1000, (1000,), 300, 16, {}),
    "copying_256": ("copying", 256, (256,), 300, 16, {}),
    "copying_1024": ("copying", 1024, (1024,), 150, 16, {}),
    "mqar": ("mqar", 64, (64, 256), 600, 16, {"pairs": 8}),
    "parity": ("parity", 40, (40, 256), 600, 16, {}),
    "counting": ("counting", 10, (50, 1000), 500, 20, {"train_size": 20}),
}


def _variant(name: str) -> dict:
  task, T, tests, steps, batch, options = SETTINGS[name]
  out = {"task": task, "data.train_len": T, "data.test_lens": tests, "data.batch_size": batch,
         "trainer.num_steps": steps, "trainer.eval_every_steps": max(steps // 5, 1)}
  out.update({f"data.{k}": v for k, v in options.items()})
  if task in ("copying", "mqar"):
    out["model.layers"] = 2
  return out


VARIANTS = {name: _variant(name) for name in SETTINGS}
# Notes 003's setting on the counting task: the linear cell reads its state (W_out = 1),
# 20 training sequences full batch, Rprop, in float64 (float32 rounding keeps the
# weights about 1e-6 from 1, which 1,000 steps turn into an MSE of 0.06).
VARIANTS["counting_notes"] = {
    **VARIANTS["counting"], "trainer.num_steps": 2000, "trainer.eval_every_steps": 500,
    "model.cell": "linear", "model.hidden": 1, "model.embed_dim": 0, "model.readout": "state",
    "model.dtype": "float64", "model.param_dtype": "float64",
    "optimizer": optim.default_config("rprop", 1e-3, min_step=1e-12)}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = configs.start("long_range", arg or "adding_100", VARIANTS)
  c.seed = 0                        # parameters and per-step keys
  c.task = "adding"                 # adding | copying | mqar | parity | counting
  c.data = ml_collections.ConfigDict(dict(
      train_len=100,                # T of the training sequences (parity: the longest)
      test_lens=(100,),             # T of the held-out test sets
      test_size=256,                # examples per test set
      train_size=0,                 # 0: a fresh generated batch every step; else one set
      batch_size=32,
      seed=1,                       # training batches: seed and step; test sets: seed + 1
      tokens=16, vocab=16,          # copying: tokens to copy, data vocabulary
      pairs=8, mqar_vocab=512,      # mqar: key-value pairs in training, vocabulary (> T)
      test_pairs=(4, 8, 16),        # mqar: pairs of the test sets
  ))
  c.model = ml_collections.ConfigDict(dict(
      cell="lstm",                  # any lib.nn.cells name
      hidden=16,
      layers=1,
      embed_dim=8,                  # token embedding, or a dense layer on the features (0: none)
      readout="dense",              # dense | state (the notes' W_out = 1: the first unit)
      dtype="float32",              # compute (bfloat16: mixed precision)
      param_dtype="float32",        # float64 (with --jax_enable_x64=True): the notes' cell
      scan="auto",
  ))
  c.optimizer = optim.default_config("adam", 1e-3, clip_norm=1.0)
  c.trainer = trainer.default_config(num_steps=1000, eval_every_steps=200, log_every_steps=50,
                                     checkpoint_every_steps=0, flush_every=50)
  return configs.finish(c, VARIANTS)


def sweep(add, name: str = "") -> None:
  """``python -m launch.sweep --config=experiments/long_range/config.py:adding_100
  --backend=vmap --out=runs/sweeps/long_range`` (the table's sweep: 4 lr x 2 seeds)."""
  if name:
    raise ValueError(f"Unknown long_range sweep {name!r}; expected ''.")
  add.grid("optimizer.lr", [1e-3, 3e-3, 1e-2, 3e-2])
  add.grid("seed", [0, 1])
