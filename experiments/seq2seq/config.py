"""Seq2seq on the book's toy tasks: addition (notes 002, DLFS2 ch. 7) and dates (ch. 8).

Variants (``config.py:<variant>``, or ``config.py:date_<variant>`` for the date task):

  baseline       separate encoder/decoder embeddings, input in reading order
  reversed       the encoder reads the question backwards
  shared         one embedding for encoder and decoder (the notes' third model)
  peeky          reversed + the encoder state fed to every decoder step (the book's best)
  attention      reversed + dot-product attention (the book's AttentionSeq2seq)
  additive       reversed + additive (Bahdanau) attention
  bidirectional  forward and backward encoders, states concatenated into the decoder

The book's settings: LSTM, embedding 16, hidden 128, batch 128, Adam (lr 1e-3),
gradient norm clipped at 5, 25 epochs; 50,000 questions, 45,000/5,000 split with
the book's seed (1984). ``date_*``: hidden 256, 10 epochs.

  python -m experiments.seq2seq.main --config=experiments/seq2seq/config.py:peeky \
      --workdir=runs/seq2seq/peeky [--config.data.path=../shared/data/dlfs2/addition.txt]
  python -m experiments.seq2seq.compare --out=runs/seq2seq/addition   # all variants + plot

Runtime and results (2-core CPU): about 100 s per addition variant (25 epochs, 9.6 ms a
step). Held-out exact match after 25 epochs, generated / book's file: baseline 0.349 /
0.263, reversed 0.956 / 0.971, shared 0.913 / 0.959, peeky 0.996 / 0.997, attention
0.987 / 0.944, additive 0.683 / 0.915, bidirectional 0.982 / 0.976. README.md beside this file has
the per-epoch curves and the date task.
"""
import ml_collections

from lib.runtime import configs
from lib.train import optim, trainer

MODELS = ("baseline", "reversed", "shared", "peeky", "attention", "additive", "bidirectional")
TASKS = ("addition", "date")

_MODEL_FIELDS = {  # model variant -> model fields
    "baseline": {},
    "reversed": dict(reverse_input=True),
    "shared": dict(shared_embedding=True),
    "peeky": dict(reverse_input=True, peeky=True),
    "attention": dict(reverse_input=True, attention="dot"),
    "additive": dict(reverse_input=True, attention="additive"),
    "bidirectional": dict(bidirectional=True),
}


def _variant(task: str, model: str) -> dict:
  overrides = {"data.task": task, **{f"model.{k}": v for k, v in _MODEL_FIELDS[model].items()}}
  if task == "date":
    overrides.update({"model.hidden": 256, "trainer.num_epochs": 10})
  return overrides


# One dict of dotted overrides per variant, applied to the base config below. ``quick``:
# the reversed addition model on 10,000 questions for 2 epochs (140 steps, about 10 s with
# start-up): a smoke run, and the sweep benchmark's trial.
VARIANTS = {
    **{m: _variant("addition", m) for m in MODELS},
    **{f"{t}_{m}": _variant(t, m) for t in TASKS for m in MODELS},
    "quick": {**_variant("addition", "reversed"), "data.num": 10_000, "trainer.num_epochs": 2,
              "num_samples": 4},
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  name = arg or "peeky"
  c = configs.start("seq2seq", name, VARIANTS)
  c.variant = name.rpartition("_")[2]  # the model variant; the task is data.task
  c.seed = 0
  c.data = ml_collections.ConfigDict(dict(
      task="addition",      # addition | date: which generator (ignored when path is set)
      path="",              # a fixed-width question_answer file (addition.txt, date.txt)
      num=50_000,           # generated questions
      gen_seed=0,
      valid=0.1,            # held out: a fraction (rounded down) or a count
      split_seed=1984,      # the book's np.random.seed(1984) split
      batch_size=128,
      shuffle_seed=0,       # minibatch order; -1: follow `seed` (fixed: a sweep over seeds vmaps)
      eval_batch_size=1000,
  ))
  c.model = ml_collections.ConfigDict(dict(
      cell="lstm", embed_dim=16, hidden=128, shared_embedding=False, reverse_input=False,
      peeky=False, attention="none", attention_dim=0, bidirectional=False,
      encoder_layers=1, order="auto",  # order: the encoder stack's (lib.nn.stacks.Order)
      unroll=16,  # scan unroll: these sequences are short, and unrolling halves the step time on CPU
      dtype="float32", scan="auto"))  # cell: any lib.nn.cells name; dtype bfloat16: mixed precision
  c.optimizer = optim.default_config("adam", 1e-3, clip_norm=5.0)
  c.num_samples = 10  # decodes printed after training (wrong ones included when any)
  c.trainer = trainer.default_config(num_epochs=25, eval_every_epochs=1, log_every_epochs=1,
                                     checkpoint_every_epochs=1, flush_every=50)
  return configs.finish(c, VARIANTS, variant=name)


def sweep(add, name: str = "") -> None:
  """Named sweeps for ``python -m launch.sweep --config=experiments/seq2seq/config.py:quick
  --sweep=<name> --backend=vmap --metric=eval/exact --mode=max --out=runs/sweeps/addition``:
    lr      4 Adam learning rates
    seeds   32 initialisations, one minibatch order (the benchmark's sweep)
    ''      (default) 4 learning rates x 2 seeds
  """
  if name == "lr":
    add.grid("optimizer.lr", [3e-4, 1e-3, 3e-3, 1e-2])
  elif name == "seeds":  # one minibatch order for all: the trials differ in initialisation only
    add.grid("data.shuffle_seed", [0])
    add.grid("seed", list(range(32)))
  elif name == "":
    add.grid("optimizer.lr", [3e-4, 1e-3, 3e-3, 1e-2])
    add.grid("seed", [0, 1])
  else:
    raise ValueError(f"Unknown seq2seq sweep {name!r}; expected 'lr', 'seeds' or ''.")
