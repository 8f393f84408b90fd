"""launch/reproduce end to end on the counting preset (the README's main job)."""
import json

import pytest

from launch import registry, reproduce, verdicts

pytestmark = pytest.mark.slow  # trains or starts processes: left out of `make test-fast`


@pytest.fixture(scope="module")
def out(tmp_path_factory):
  out = tmp_path_factory.mktemp("reproduce")
  reproduce.run(str(out), quick=True, only=["counting"])
  return out


def test_writes_report_results_and_plots(out):
  records = json.loads((out / "results.json").read_text())
  assert {r["experiment"] for r in records} == {"counting"}
  assert all(set(r) == {"experiment", "variant", "metric", "value", "reference", "source",
                        "check", "verdict"} for r in records)
  assert all(r["verdict"] in verdicts.LABELS for r in records)
  report = (out / "report.md").read_text()
  assert "| counting | rmsprop | w_x |" in report and "0.9995" in report
  assert "**reproduced**: within ±0.01 of 0.9995" in report
  summary = report.split("## Every result")[0]
  assert "| counting | notes 003" in summary  # the one-screen summary names the seed
  table = [l for l in report.split("## Every result")[1].splitlines() if l.startswith("| counting")]
  assert len(table) == len(records) and all("| **" in l for l in table)  # a verdict on every row
  for png in ("optimizers.png", "cells.png", "cost_surface.png"):
    assert (out / "counting" / png).stat().st_size > 10_000
    assert f"counting/{png}" in report


def test_results_meet_the_notes(out):
  rec = {(r["variant"], r["metric"]): r["value"]
         for r in json.loads((out / "results.json").read_text())}
  assert abs(rec["rmsprop", "w_x"] - 1) < 0.01 and abs(rec["rmsprop", "w_rec"] - 1) < 0.01
  assert abs(rec["rprop", "w_x"] - 1) < 0.01 and abs(rec["rprop", "w_rec"] - 1) < 0.01
  assert rec["gd", "cost"] < 0.1


def test_every_registered_module_has_reproduce_and_a_seed():
  import importlib
  for module in registry.EXPERIMENTS.values():
    mod = importlib.import_module(module)
    assert callable(mod.reproduce) and mod.SEED.startswith("notes 00")


def test_unknown_experiment_is_rejected(tmp_path):
  from absl import app
  with pytest.raises(app.UsageError, match="registered"):
    reproduce.run(str(tmp_path), True, ["nope"])
