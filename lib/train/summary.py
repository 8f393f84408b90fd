"""A run's ``config.json`` and ``summary.json``."""
from __future__ import annotations

import json
import os
from typing import Any, Mapping, Optional

import ml_collections

from lib.errors import ConfigChanged
from lib.runtime import files
from lib.train.task import Params, Task

SUMMARY_FILE = "summary.json"
CONFIG_FILE = "config.json"


# Fields that change how a run reports, not its numbers: a resume may change them.
REPORTING_FIELDS = ("trainer.tensorboard", "trainer.plot", "trainer.progress_every_s",
                    "trainer.flush_every", "trainer.max_checkpoints", "trainer.resume_longer",
                    "trainer.distributed", "trainer.coordinator_address",
                    "trainer.num_processes", "trainer.process_id")


def save_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  files.atomic_write(os.path.join(workdir, CONFIG_FILE),
                     config.to_json_best_effort(indent=2, sort_keys=True))


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict:
  out = {}
  for k, v in d.items():
    if isinstance(v, Mapping):
      out.update(_flat(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def check_same_run(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Raises :class:`ConfigChanged` (one line: the keys that differ and the way out)
  when ``workdir``'s ``config.json`` differs from ``config`` in anything but
  :data:`REPORTING_FIELDS`; ``trainer.resume_longer=True`` lets the run length change."""
  path = os.path.join(workdir, CONFIG_FILE)
  try:
    with open(path) as f:
      old = _flat(json.load(f))
  except FileNotFoundError:
    return
  except json.JSONDecodeError as e:
    raise ConfigChanged(f"{path}: not a config ({e}); give another --workdir.") from None
  new = _flat(json.loads(config.to_json_best_effort()))
  ignored = set(REPORTING_FIELDS)
  if config.trainer.get("resume_longer"):
    ignored.add("trainer.num_steps")
  diff = [k for k in sorted(set(old) | set(new)) if k not in ignored and old.get(k) != new.get(k)]
  if not diff:
    return
  shown = ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:6])
  more = f" and {len(diff) - 6} more" if len(diff) > 6 else ""
  way_out = ("give a new --workdir, or --config.trainer.resume_longer=True to continue this "
             "run to the new length" if diff == ["trainer.num_steps"] else "give a new --workdir")
  raise ConfigChanged(f"{workdir} holds a run of another config ({shown}{more}): {way_out}.")


def make_summary(task: Task, config: ml_collections.ConfigDict, params: Params, *, status: str,
                 error: Optional[str], steps: int, resumed_from: int, wall_s: float,
                 last_train: Mapping[str, float], last_eval: Mapping[str, float],
                 checkpoint_step: Optional[int], **more) -> dict:
  """A run's ``summary.json`` content (``more``: extra top-level fields)."""
  return {
      "experiment": task.name,
      "status": status,
      "error": error,
      "steps": steps,
      "resumed_from": resumed_from,
      "wall_time_s": round(wall_s, 3),
      **more,
      "final": {**{f"train/{k}": v for k, v in last_train.items()},
                **{f"eval/{k}": v for k, v in last_eval.items()}},
      "extra": ({k: float(v) for k, v in task.summary_fn(params).items()}
                if task.summary_fn and status == "completed" else {}),
      "checkpoint_step": checkpoint_step,
      "config": config.to_dict(),
  }


def write_summary(workdir: str, summary: Mapping[str, Any]) -> None:
  files.atomic_write(os.path.join(workdir, SUMMARY_FILE),
                     json.dumps(summary, indent=2, default=str))


def read_summary(workdir: str) -> dict:
  with open(os.path.join(workdir, SUMMARY_FILE)) as f:
    return json.load(f)
