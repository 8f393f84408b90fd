"""Runs every registered experiment's preset on embedded data and writes a report.

  python -m launch.reproduce --quick --out=runs/reproduce [--only=counting]

Writes ``<out>/report.md`` (results beside the figures the notes or the
literature report, plus the plots) and ``<out>/results.json`` (one record per
result: experiment, variant, metric, value, reference), and prints the table.
"""
from __future__ import annotations

import importlib
import json
import os
import time

from absl import app, flags

from launch import registry
from lib.runtime import cli

_OUT = flags.DEFINE_string("out", "runs/reproduce", "Output folder.")
_QUICK = flags.DEFINE_bool("quick", False, "Short presets: the whole job in a few minutes on 2 CPU cores.")
_ONLY = flags.DEFINE_list("only", [], "Run only these experiments (default: all registered).")


def _fmt(v) -> str:
  if v is None:
    return "—"
  if isinstance(v, float) and not v.is_integer():
    return f"{v:.5g}"
  return f"{int(v)}" if isinstance(v, float) else str(v)


def markdown_table(records: list[dict]) -> str:
  rows = ["| experiment | variant | metric | rnnlab | reference | source |",
          "|---|---|---|---|---|---|"]
  rows += [f"| {r['experiment']} | {r['variant']} | {r['metric']} | {_fmt(r['value'])} | "
           f"{_fmt(r['reference'])} | {r['source'] or '—'} |" for r in records]
  return "\n".join(rows)


def run(out: str, quick: bool, only: list[str]) -> list[dict]:
  unknown = set(only) - set(registry.EXPERIMENTS)
  if unknown:
    raise app.UsageError(f"Unknown experiments {sorted(unknown)}; registered: {sorted(registry.EXPERIMENTS)}")
  os.makedirs(out, exist_ok=True)
  records, figures, timings = [], [], {}
  for name, module in registry.EXPERIMENTS.items():
    if only and name not in only:
      continue
    t0 = time.perf_counter()
    result = importlib.import_module(module).reproduce(os.path.join(out, name), quick)
    timings[name] = time.perf_counter() - t0
    records += result["records"]
    figures += result["figures"]
  with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(records, f, indent=2)
  table = markdown_table(records)
  cmd = f"python -m launch.reproduce {'--quick ' if quick else ''}--out={out}"
  lines = ["# rnnlab: reproduction report", "", f"Command: `{cmd}`", "",
           "Run time: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()), "", table, ""]
  lines += [f"![{os.path.basename(p)}]({os.path.relpath(p, out)})" for p in figures]
  with open(os.path.join(out, "report.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  print(table)
  print(f"\nReport: {os.path.join(out, 'report.md')}  ({sum(timings.values()):.0f} s)")
  return records


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  run(_OUT.value, _QUICK.value, _ONLY.value)


if __name__ == "__main__":
  cli.prepare_process()  # before JAX starts its threads
  app.run(main)
