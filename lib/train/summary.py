"""A run's ``config.json`` and ``summary.json``."""
from __future__ import annotations

import json
import os
from typing import Any, Mapping, Optional

import ml_collections

from lib.train.task import Params, Task

SUMMARY_FILE = "summary.json"
CONFIG_FILE = "config.json"


def save_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  with open(os.path.join(workdir, CONFIG_FILE), "w") as f:
    f.write(config.to_json_best_effort(indent=2, sort_keys=True))


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
  with open(os.path.join(workdir, SUMMARY_FILE), "w") as f:
    json.dump(summary, f, indent=2, default=str)


def read_summary(workdir: str) -> dict:
  with open(os.path.join(workdir, SUMMARY_FILE)) as f:
    return json.load(f)
