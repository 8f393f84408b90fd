"""Runs every registered experiment's preset on embedded data and writes a report.

  python -m launch.reproduce --quick --out=runs/reproduce [--only=counting]
      [--add=myproj/mycount --add=myproj.experiments.other]   # experiments outside the checkout

Writes ``<out>/report.md`` (a one-screen summary per experiment, then every result
beside the figure the notes or the literature report and its verdict, then the
plots) and ``<out>/results.json`` (one record per result: experiment, variant,
metric, value, reference, source, check and verdict), and prints the table. Each
experiment's module gives ``SEED`` (the system it reproduces) and a ``check`` on
every record (:mod:`launch.verdicts`).
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import os
import time

from absl import app, flags

from launch import registry, verdicts
from lib.runtime import cli, locate, workdirs

_OUT = flags.DEFINE_string("out", "runs/reproduce", "Output folder.")
_QUICK = flags.DEFINE_bool("quick", False, "Short presets: the whole job in a few minutes on 2 CPU cores.")
_ONLY = flags.DEFINE_list("only", [], "Run only these experiments (default: all registered).")
_ADD = flags.DEFINE_multi_string("add", [], "An experiment outside the registry: its folder "
                                 "(holding reproduce.py) or its package (myproj.mycount).")


def experiments(added: list[str]) -> dict[str, str]:
  """The registry's experiments, then each of ``added`` (a folder or a package path)
  as ``{name: module of its reproduce}``."""
  out = dict(registry.EXPERIMENTS)
  for where in added:
    if os.path.isdir(where):
      if not os.path.isfile(os.path.join(where, "reproduce.py")):
        raise app.UsageError(f"--add={where}: no reproduce.py in that folder.")
      package = locate.importable(os.path.join(where, "reproduce.py"))
    else:
      package = where
      if importlib.util.find_spec(f"{package}.reproduce") is None:
        raise app.UsageError(f"--add={where}: no folder, and no module {where}.reproduce on the path.")
    out[package.rsplit(".", 1)[-1]] = f"{package}.reproduce"
  return out


def _fmt(v) -> str:
  if v is None:
    return "—"
  if isinstance(v, float) and not v.is_integer():
    return f"{v:.5g}"
  return f"{int(v)}" if isinstance(v, float) else str(v)


def markdown_table(records: list[dict]) -> str:
  rows = ["| experiment | variant | metric | rnnlab | reference | source | verdict |",
          "|---|---|---|---|---|---|---|"]
  for r in records:
    label, text = verdicts.verdict(r)
    rows.append(f"| {r['experiment']} | {r['variant']} | {r['metric']} | {_fmt(r['value'])} | "
                f"{_fmt(r['reference'])} | {r['source'] or '—'} | **{label}**: {text} |")
  return "\n".join(rows)


def summary_table(records: list[dict], seeds: dict[str, str], timings: dict[str, float]) -> str:
  """One row per experiment: the system it reproduces, its headline result (the first
  record that has a reference, else the first), the verdicts, the run time."""
  rows = ["| experiment | reproduces | headline | verdicts | time |", "|---|---|---|---|---|"]
  for name, seed in seeds.items():
    rs = [r for r in records if r["experiment"] == name]
    if not rs:
      continue
    head = next((r for r in rs if r["reference"] is not None), rs[0])
    label = verdicts.verdict(head)[0]
    got = ", ".join(f"{n} {k}" for k, n in verdicts.counts(rs).items())
    ref = "" if head["reference"] is None else f" (reference {_fmt(head['reference'])})"
    rows.append(f"| {name} | {seed} | {head['variant']}, {head['metric']}: "
                f"{_fmt(head['value'])}{ref}: {label} | {got} | {timings[name]:.0f} s |")
  return "\n".join(rows)


def run(out: str, quick: bool, only: list[str], added: list[str] = ()) -> list[dict]:
  known = experiments(list(added))
  unknown = set(only) - set(known)
  if unknown:
    raise app.UsageError(f"Unknown experiments {sorted(unknown)}; registered: {sorted(known)}")
  if workdirs.is_remote(out):
    raise app.UsageError(f"--out={out}: give a local folder (copy the report afterwards).")
  os.makedirs(out, exist_ok=True)
  records, figures, timings, seeds = [], [], {}, {}
  for name, module in known.items():
    if only and name not in only:
      continue
    t0 = time.perf_counter()
    mod = importlib.import_module(module)
    result = mod.reproduce(os.path.join(out, name), quick)
    timings[name], seeds[name] = time.perf_counter() - t0, mod.SEED
    records += result["records"]
    figures += result["figures"]
  table = markdown_table(records)  # raises on a record without a usable check
  with open(os.path.join(out, "results.json"), "w") as f:
    json.dump([{**r, "verdict": verdicts.verdict(r)[0]} for r in records], f, indent=2)
  cmd = f"python -m launch.reproduce {'--quick ' if quick else ''}--out={out}"
  lines = ["# rnnlab: reproduction report", "", f"Command: `{cmd}`", "",
           summary_table(records, seeds, timings), "",
           f"Run time: {sum(timings.values()):.0f} s in all.", "", "## Every result", "", table, ""]
  lines += [f"![{os.path.basename(p)}]({os.path.relpath(p, out)})" for p in figures]
  with open(os.path.join(out, "report.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  print(table)
  print(f"\nReport: {os.path.join(out, 'report.md')}  ({sum(timings.values()):.0f} s)")
  return records


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  run(_OUT.value, _QUICK.value, _ONLY.value, _ADD.value)


if __name__ == "__main__":
  cli.prepare_process()  # before JAX starts its threads
  app.run(main)
