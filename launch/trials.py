"""A sweep's trials on disk, shared by every backend of ``launch/sweep`` (and by the
Ray Tune workers, which import only this): what a trial is, its command line,
its ``trial.json`` record, whether it has finished.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
from typing import Sequence

from lib.runtime import files, locate, process
from lib.sweeps import space

TRIAL_FILE = "trial.json"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass
class Trial:
  index: int
  overrides: dict
  workdir: str
  common: dict = dataclasses.field(default_factory=dict)  # --set, shared by every trial

  @property
  def label(self) -> str:
    return space.label(self.overrides)


def main_module(config_path: str) -> str:
  """``experiments/counting/config.py`` -> ``experiments.counting.main``; an experiment
  outside the checkout -> ``launch.run`` (:func:`lib.runtime.locate.main_command`)."""
  return locate.main_command(config_path)[1]


read_json = files.read_json


FINISHED = ("completed", "stopped")  # stopped: cut by successive halving, not to be rerun


def is_done(trial: Trial) -> bool:
  s = read_json(os.path.join(trial.workdir, "summary.json"))
  return bool(s) and s.get("status") in FINISHED


def record(trial: Trial, **fields) -> dict:
  path = os.path.join(trial.workdir, TRIAL_FILE)
  rec = read_json(path) or {"index": trial.index, **identity(trial), "attempts": 0}
  rec.update(fields)
  os.makedirs(trial.workdir, exist_ok=True)
  files.atomic_write(path, json.dumps(rec, indent=2, default=str))
  return rec


def identity(trial: Trial) -> dict:
  """What makes a trial the trial it is, as ``trial.json`` stores it."""
  return json.loads(json.dumps({"overrides": trial.overrides, "set": trial.common}, default=str))


def set_aside_changed(trials: Sequence[Trial]) -> list[str]:
  """Moves the folder of each trial whose overrides or ``--set`` values changed since
  it ran to ``<folder>.replaced-<n>`` (kept, never deleted), so the trial runs anew
  instead of being reported with the old values. Returns the folders moved."""
  moved = []
  for t in trials:
    rec = read_json(os.path.join(t.workdir, TRIAL_FILE))
    if rec is None or {k: rec.get(k, {}) for k in ("overrides", "set")} == identity(t):
      continue
    n = 1
    while os.path.exists(f"{t.workdir}.replaced-{n}"):
      n += 1
    os.replace(t.workdir, f"{t.workdir}.replaced-{n}")
    moved.append(f"{t.workdir}.replaced-{n}")
    print(f"{os.path.basename(t.workdir)}: its overrides or --set values changed; the old run "
          f"is kept in {moved[-1]} and the trial runs again.", file=sys.stderr)
  return moved + _set_aside_unlisted(trials)


def _set_aside_unlisted(trials: Sequence[Trial]) -> list[str]:
  """Moves the trial folders of an earlier plan that this plan no longer has (a
  smaller grid) aside as ``<folder>.replaced-<n>``, so every folder left is listed."""
  if not trials:
    return []
  out = os.path.dirname(trials[0].workdir)
  listed = {os.path.abspath(t.workdir) for t in trials}
  moved = []
  for name in sorted(os.listdir(out)) if os.path.isdir(out) else []:
    path = os.path.join(out, name)
    if (re.fullmatch(r"t\d+", name) and os.path.abspath(path) not in listed
        and os.path.exists(os.path.join(path, TRIAL_FILE))):
      n = 1
      while os.path.exists(f"{path}.replaced-{n}"):
        n += 1
      os.replace(path, f"{path}.replaced-{n}")
      moved.append(f"{path}.replaced-{n}")
  if moved:
    print(f"{len(moved)} trial folder(s) of an earlier plan are not in this one: kept as "
          f"{', '.join(os.path.basename(m) for m in moved)}.", file=sys.stderr)
  return moved


def command(config_spec: str, trial: Trial) -> list[str]:
  """The trial's ``python -m experiments.<name>.main ...`` command line (``launch.run``
  for an experiment outside the checkout)."""
  flags_ = [f"--config.{k}={v}" for k, v in {**trial.common, **trial.overrides}.items()]
  return [sys.executable, *locate.main_command(config_spec), f"--config={config_spec}",
          f"--workdir={trial.workdir}", *flags_]


def start(trial: Trial) -> None:
  attempts = (read_json(os.path.join(trial.workdir, TRIAL_FILE)) or {}).get("attempts", 0)
  record(trial, status="running", attempts=attempts + 1, error=None)


def finish(trial: Trial, res: dict) -> dict:
  if res["rc"] == 0 and is_done(trial):
    return record(trial, status="completed", returncode=0, wall_s=res["wall_s"])
  s = read_json(os.path.join(trial.workdir, "summary.json")) or {}
  if res["rc"] in (process.EXIT_SIGTERM, process.EXIT_INTERRUPTED) and s.get("status") == "interrupted":
    return record(trial, status="interrupted", returncode=res["rc"], wall_s=res["wall_s"],
                   error=None)
  return record(trial, status="failed", returncode=res["rc"], wall_s=res["wall_s"],
                 error=res["error"] or "exited 0 without a completed summary.json")


def error_tail(stderr: str) -> str:
  """A failed trial's error: the exception line (``ValueError: ...`` or the CLI's
  ``error: ...``) when there is one, else the last lines, without INFO chatter."""
  keep = [l.strip() for l in stderr.splitlines() if l.strip() and not l.startswith(("I1", "W1"))]
  errors = [l for l in keep if re.match(r"^(error:|[\w.]*(Error|Exception|Interrupt)\b)", l)]
  return errors[-1] if errors else ("\n".join(keep[-3:]) or "(no error output)")
