"""The long-range table: every cell on every task at one budget per task, each lr picked
by a vmapped sweep (4 learning rates x 2 seeds, ``launch.sweep --backend=vmap``).

  python -m experiments.long_range.table --out=runs/long_range/table \
      [--variants=adding_100,parity] [--cells=lstm,lru] [--set=trainer.num_steps=50]

Each (task, cell) is one sweep folder, ``<out>/<variant>/<cell>``; re-running skips the
finished ones (resumable across sittings). Every cell gets the hidden size whose
parameter count is closest to the LSTM's at ``REFERENCE_HIDDEN`` (within 10%, or the
run is refused). Writes ``<out>/table.md``, ``table.json`` and ``lengths.png`` (the
metric against the sequence length, one panel per task, one line per cell).
"""
from __future__ import annotations

import json
import math
import os
import statistics
import time

import jax
from absl import app, flags

from experiments.long_range import config as config_lib, experiment, tasks
from launch import sweep as sweep_lib
from lib.nn import seq2seq
from lib.runtime import cli, files, plotting, writers
from lib.sweeps import space

CELLS = ("elman", "lstm", "gru", "linear", "diagonal", "lru", "mingru", "minlstm", "rglru",
         "mlstm")
TABLE_VARIANTS = ("counting", "parity", "mqar", "adding_100", "adding_500", "adding_1000",
                  "copying_256", "copying_1024")      # the cheapest first
REFERENCE_HIDDEN = 16      # the LSTM whose parameter count every cell matches
LRS = (1e-3, 3e-3, 1e-2, 3e-2)
SEEDS = 2
SOLVED = {"mse": 0.01, "acc": 0.99}   # the primary metric's bar: below (mse) / at least (acc)

_OUT = flags.DEFINE_string("out", "runs/long_range/table", "Folder of the sweeps and the table.")
_VARIANTS = flags.DEFINE_list("variants", list(TABLE_VARIANTS), "Config variants (tasks).")
_CELLS = flags.DEFINE_list("cells", list(CELLS), "Cells of the registry.")
_SET = flags.DEFINE_list("set", [], "key=value overrides for every sweep (e.g. a shorter budget).")


def num_params(variant: str, cell: str, hidden: int) -> int:
  c = space.apply(config_lib.get_config(variant), {"model.cell": cell, "model.hidden": hidden})
  shapes = jax.eval_shape(experiment.make_model(c).init, jax.random.key(0))
  return seq2seq.num_params(shapes)


def matched_hidden(variant: str, cell: str) -> tuple[int, int, int]:
  """``(hidden, params, target)``: the hidden size closest to the reference LSTM's count."""
  target = num_params(variant, "lstm", REFERENCE_HIDDEN)
  lo, hi = 1, 8192
  while hi - lo > 1:  # parameter counts grow with the hidden size
    mid = (lo + hi) // 2
    lo, hi = (mid, hi) if num_params(variant, cell, mid) <= target else (lo, mid)
  best = min((lo, hi), key=lambda h: abs(num_params(variant, cell, h) - target))
  params = num_params(variant, cell, best)
  if abs(params - target) > 0.1 * target:
    raise ValueError(f"{cell} on {variant}: no hidden size within 10% of {target} parameters.")
  return best, params, target


def primary(variant: str) -> tuple[str, str]:
  """``(metric, mode)`` that picks the lr: the first test set's."""
  c = config_lib.get_config(variant)
  metric = "mse" if c.task in tasks.REGRESSION else "acc"
  T = c.data.test_lens[0]
  name = f"eval/{metric}@{T}" + (f"x{c.data.pairs}" if c.task == "mqar" else "")
  return name, "min" if metric == "mse" else "max"


HALVING_FROM = 256         # halve tasks this long or longer (shorter: a 2nd compile costs more)


def halving(variant: str, sets: dict) -> dict | None:
  """One rung at 40% of the steps (an evaluation step) keeps the better half."""
  c = config_lib.get_config(variant)
  if c.data.train_len < HALVING_FROM:
    return None
  steps = sets.get("trainer.num_steps", c.trainer.num_steps)
  return {"rungs": (round(0.4 * steps),), "unit": "steps", "keep": 0.5}


def finished(out: str) -> bool:
  """Whether every trial of the sweep in ``out`` has ended (completed, stopped by halving
  or diverged): the table reads it as it is."""
  plan = sweep_lib.read_json(os.path.join(out, "sweep.json"))
  return bool(plan) and all(
      (sweep_lib.read_json(os.path.join(t["dir"], "summary.json")) or {}).get("status")
      in (*sweep_lib.FINISHED, "diverged") for t in plan["trials"])


def run_sweep(variant: str, cell: str, hidden: int, out: str, sets: dict) -> None:
  """The cell's vmapped sweep on one task (re-running resumes it; a finished one is kept)."""
  if finished(out):
    return
  metric, mode = primary(variant)
  sweep_lib.sweep(f"experiments/long_range/config.py:{variant}", "", out, backend="vmap",
                  metric=metric, mode=mode, grid=[f"optimizer.lr={','.join(map(str, LRS))}"],
                  seeds=SEEDS, common={"model.cell": cell, "model.hidden": hidden, **sets},
                  halving=halving(variant, sets))


def _solved(metric: str, value) -> bool:
  if value is None or not math.isfinite(value):
    return False
  return value < SOLVED["mse"] if metric.split("/")[-1].startswith("mse") else value >= SOLVED["acc"]


def row(variant: str, cell: str, out: str) -> dict:
  """The cell's row on one task: the lr whose seeds score best on average, their mean
  metric (and every test set's), seeds solved, the first step solved, the sweep's wall time."""
  metric, mode = primary(variant)
  plan = json.load(open(os.path.join(out, "sweep.json")))
  by_lr: dict[float, list[dict]] = {}
  for t in plan["trials"]:
    summary = sweep_lib.read_json(os.path.join(t["dir"], "summary.json")) or {}
    trial = sweep_lib.read_json(os.path.join(t["dir"], "trial.json")) or {}
    evals = writers.read_records(t["dir"], "eval") if os.path.exists(
        os.path.join(t["dir"], writers.METRICS_FILE)) else []
    by_lr.setdefault(t["overrides"]["optimizer.lr"], []).append(
        {"final": {k: v for k, v in summary.get("final", {}).items() if k.startswith("eval/")},
         "status": summary.get("status"), "evals": evals, "wall_s": trial.get("wall_s")})
  sign = 1 if mode == "min" else -1

  def score(seeds):  # trials stopped by halving or diverged rank last
    vals = [s["final"].get(metric) for s in seeds if s["status"] == "completed"]
    vals = [v for v in vals if v is not None and math.isfinite(v)]
    return (len(seeds) - len(vals), sign * statistics.fmean(vals) if vals else math.inf)

  lr, seeds = min(by_lr.items(), key=lambda kv: score(kv[1]))
  done = [s for s in seeds if s["status"] == "completed"]
  keys = sorted({k for s in done for k in s["final"]})
  means = {k: statistics.fmean(s["final"][k] for s in done if k in s["final"]) for k in keys}
  name = metric.split("/", 1)[1]   # eval records name their metrics without the split
  firsts = [next((r["step"] for r in s["evals"] if _solved(metric, r.get(name))), None)
            for s in done]
  walls = [s["wall_s"] for group in by_lr.values() for s in group if s["wall_s"]]
  return {"variant": variant, "cell": cell, "lr": lr, "metric": metric, "mean": means.get(metric),
          "spread": [s["final"].get(metric) for s in done], "means": means,
          "solved": sum(_solved(metric, s["final"].get(metric)) for s in done),
          "seeds": len(seeds), "first_solved": min([f for f in firsts if f is not None], default=None),
          "wall_s": max(walls, default=None)}


def _fmt(v) -> str:
  if v is None:
    return "—"
  return f"{v:.3g}" if isinstance(v, float) else str(v)


def write_table(rows: list[dict], params: dict, out: str, header: str) -> str:
  """``table.md`` (one line per task and cell) and ``table.json``."""
  lines = [header, "",
           "| task | cell | hidden | params | lr | metric | mean of 2 seeds | seeds | solved "
           "| first solved at step | other test sets (mean) | sweep wall s |",
           "|" + "---|" * 12]
  for r in rows:
    hidden, n, _ = params[(r["variant"], r["cell"])]
    others = ", ".join(f"{k.split('/')[-1]} {_fmt(v)}" for k, v in r["means"].items()
                       if k != r["metric"])
    lines.append(f"| {r['variant']} | {r['cell']} | {hidden} | {n:,} | {r['lr']:g} | "
                 f"{r['metric'].split('/')[-1]} | {_fmt(r['mean'])} | "
                 f"{' / '.join(_fmt(v) for v in r['spread'])} | {r['solved']}/{r['seeds']} | "
                 f"{_fmt(r['first_solved'])} | {others or '—'} | {_fmt(r['wall_s'])} |")
  text = "\n".join(lines) + "\n\n" + matrix(rows)
  files.atomic_write(os.path.join(out, "table.md"), text)
  files.atomic_write(os.path.join(out, "table.json"), json.dumps(rows, indent=1, default=str))
  return text


def matrix(rows: list[dict]) -> str:
  """One line per cell, one column per task: the mean metric of the chosen lr, with
  ``(2/2)`` when both seeds solved it (MSE below 0.01, accuracy at least 0.99)."""
  variants = list(dict.fromkeys(r["variant"] for r in rows))
  cells = list(dict.fromkeys(r["cell"] for r in rows))
  at = {(r["variant"], r["cell"]): r for r in rows}
  heads = [f"{v} ({primary(v)[0].split('/')[-1].split('@')[0]})" for v in variants]
  lines = ["| cell | " + " | ".join(heads) + " |", "|" + "---|" * (len(variants) + 1)]
  for cell in cells:
    entries = []
    for v in variants:
      r = at.get((v, cell))
      entries.append("—" if r is None else _fmt(r["mean"]) + (
          f" **({r['solved']}/{r['seeds']})**" if r["solved"] else ""))
    lines.append(f"| {cell} | " + " | ".join(entries) + " |")
  return "\n".join(lines) + "\n"


def _length(key: str) -> int:
  """``eval/acc@256x8`` -> 256."""
  return int(key.split("@")[1].split("x")[0])


def plot_lengths(rows: list[dict], out: str) -> None:
  """``lengths.png``: each task's metric against the sequence length, a line per cell
  (adding and copying: one point per variant; the others: one per test set; MQAR at the
  training's number of pairs)."""
  panels: dict[str, dict[str, dict[int, float]]] = {}
  for r in rows:
    c = config_lib.get_config(r["variant"])
    for key, v in r["means"].items():
      if c.task == "mqar" and not key.endswith(f"x{c.data.pairs}"):
        continue
      panels.setdefault(c.task, {}).setdefault(r["cell"], {})[_length(key)] = v
  order = [t for t in tasks.TASKS if t in panels]
  if not order:
    return
  data = [(task, "MSE" if task in tasks.REGRESSION else "accuracy",
           {cell: (sorted(pts), [pts[x] for x in sorted(pts)]) for cell, pts in panels[task].items()})
          for task in order]
  plotting.plot_panels(data, os.path.join(out, "lengths.png"), xlabel="sequence length T",
                       title="long-range tasks: held-out metric against length (lr by sweep)",
                       logy=[t in tasks.REGRESSION for t in order])


def main(argv):
  del argv
  sets = cli.parse_sets(_SET.value)
  params, rows = {}, []
  t0 = time.time()
  for variant in _VARIANTS.value:
    for cell in _CELLS.value:
      params[(variant, cell)] = matched_hidden(variant, cell)
      out = os.path.join(_OUT.value, variant, cell)
      run_sweep(variant, cell, params[(variant, cell)][0], out, sets)
      rows.append(row(variant, cell, out))
      total = sum(r["wall_s"] or 0.0 for r in rows) / 60
      header = (f"Long-range table: {len(rows)} sweeps, {total:.0f} min of sweep wall time "
                f"({time.time() - t0:.0f} s in this sitting); overrides: {sets or 'none'}.")
      write_table(rows, params, _OUT.value, header)
      plot_lengths(rows, _OUT.value)
  print(open(os.path.join(_OUT.value, "table.md")).read())


if __name__ == "__main__":
  cli.prepare_process()
  app.run(main)
