"""An experiment that lives outside the checkout (a research project's own folder: a
copy of counting named ``mycount``): the generic entry point, local, vmapped and Ray
Tune sweeps, resume, and one-line errors for wrong paths."""
import json
import os
import re
import subprocess
import sys

import pytest

from launch import sweep as sweep_lib
from lib.runtime import locate

pytestmark = pytest.mark.slow  # starts processes: left out of `make test-fast`

TINY = "--set=trainer.num_epochs=6,trainer.tensorboard=False,trainer.plot=False"


@pytest.fixture
def project(tmp_path):
  """``<tmp>/proj/mycount/{config,experiment,tasks}.py``: no __init__.py, not on the path;
  its experiment imports its own module as ``mycount.tasks``."""
  folder = tmp_path / "proj" / "mycount"
  folder.mkdir(parents=True)
  src = os.path.join(locate.ROOT, "experiments", "counting")
  config = open(os.path.join(src, "config.py")).read()
  (folder / "config.py").write_text(config.replace('configs.start("counting"',
                                                   'configs.start("mycount"'))
  experiment = open(os.path.join(src, "experiment.py")).read()
  (folder / "experiment.py").write_text(experiment.replace(  # a module of its own, imported
      "from __future__ import annotations\n",
      "from __future__ import annotations\n\nfrom mycount import tasks  # noqa: F401\n", 1))
  (folder / "tasks.py").write_text("NAME = 'mycount'\n")
  _forget_mycount()  # each test's project is another folder: import it afresh
  yield tmp_path / "proj"
  _forget_mycount()


def _forget_mycount():
  for name in [m for m in sys.modules if m == "mycount" or m.startswith("mycount.")]:
    del sys.modules[name]


def _run(args, cwd, env=None):
  return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True,
                        env={**os.environ, **(env or {})})


def _summary(folder):
  return json.loads((folder / "summary.json").read_text())


def test_the_entry_point_and_local_and_vmapped_sweeps_run_it_and_resume(project, tmp_path):
  r = _run(["launch.run", "--config=mycount/config.py:rprop", f"--workdir={tmp_path}/one",
            "--config.trainer.num_epochs=6"], cwd=project)
  assert r.returncode == 0, r.stderr[-2000:]
  assert _summary(tmp_path / "one")["status"] == "completed"
  r = _run(["launch.sweep", "--config=mycount/config.py:rprop", f"--out={tmp_path}/local",
            "--grid=optimizer.lr=0.01,0.02", TINY], cwd=project)  # trials through launch.run
  assert r.returncode == 0, r.stderr[-2000:]
  assert json.loads((tmp_path / "local" / "sweep.json").read_text())["config"] == (
      f"{project}/mycount/config.py:rprop")
  s = sweep_lib.sweep(f"{project}/mycount/config.py:rprop", "", str(tmp_path / "vmap"),
                      backend="vmap", grid=["optimizer.lr=0.01,0.02"],
                      common={"trainer.num_epochs": 6, "trainer.plot": False})
  for out in (tmp_path / "local", tmp_path / "vmap"):
    assert [_summary(out / t)["status"] for t in ("t000", "t001")] == ["completed"] * 2
  assert s["rows"][0]["train/loss"] == pytest.approx(_summary(tmp_path / "local" / "t000")[
      "final"]["train/loss"], rel=1e-4)
  os.remove(tmp_path / "local" / "t001" / "summary.json")  # killed before its summary
  r = _run(["launch.sweep", f"--config={project}/mycount/config.py:rprop", f"--out={tmp_path}/local",
            "--grid=optimizer.lr=0.01,0.02", TINY], cwd=tmp_path)
  assert r.returncode == 0, r.stderr[-2000:]
  attempts = [json.loads((tmp_path / "local" / t / "trial.json").read_text())["attempts"]
              for t in ("t000", "t001")]
  assert attempts == [1, 2] and _summary(tmp_path / "local" / "t001")["resumed_from"] == 6


def test_an_experiment_named_by_its_package_runs_by_the_entry_point(project, monkeypatch):
  from launch import run
  monkeypatch.syspath_prepend(str(project))
  spec, argv = run._spec(["run.py", "--experiment=mycount:rprop", "--workdir=w"])
  assert spec == f"{project}/mycount/config.py:rprop"
  assert argv == ["run.py", f"--config={spec}", "--workdir=w"]
  assert locate.experiment_module(spec).__name__ == "mycount.experiment"


def test_a_ray_tune_sweep_runs_it(project, tmp_path):
  pytest.importorskip("ray")
  s = sweep_lib.sweep(f"{project}/mycount/config.py:rprop", "", str(tmp_path / "ray"),
                      backend="ray", metric="train/cost", grid=["optimizer.lr=0.01,0.02"],
                      common={"trainer.num_epochs": 6, "trainer.tensorboard": False},
                      ray_options={"num_cpus": 1})
  assert [r["status"] for r in s["rows"]] == ["completed"] * 2


def test_a_wrong_path_is_one_line_and_exit_2(tmp_path):
  r = _run(["launch.sweep", "--config=nowhere/config.py", "--out=x"], cwd=tmp_path)
  err = r.stderr.strip().splitlines()
  assert r.returncode == 2 and len(err) == 1, r.stderr[-2000:]
  assert err[0].startswith("error: --config=nowhere/config.py: no such file")


@pytest.mark.parametrize("config, experiment, message", [
    ("nowhere/config.py", None, "--config=nowhere/config.py: no such file"),
    (None, "no_such_pkg", "--experiment=no_such_pkg: no module no_such_pkg.config on the Python path"),
    (None, None, "give --config=<folder>/config.py[:variant] or --experiment="),
    ("a/config.py", "b", "give --config="),
])
def test_the_experiment_is_named_by_one_of_config_and_experiment(config, experiment, message):
  from lib.errors import ConfigError
  from lib.runtime import cli
  with pytest.raises(ConfigError, match="^" + re.escape(message)):
    cli.experiment_spec(config, experiment)


def test_a_config_without_its_experiment_is_refused(tmp_path):
  from lib.errors import ConfigError
  (tmp_path / "config.py").write_text("def get_config(arg=None):\n  return None\n")
  with pytest.raises(ConfigError, match="no experiment.py beside it"):
    locate.experiment_module(str(tmp_path / "config.py"))


def test_the_report_runs_an_experiment_added_from_a_folder(tmp_path):
  from launch import reproduce
  folder = tmp_path / "proj" / "mine"
  folder.mkdir(parents=True)
  (folder / "reproduce.py").write_text(
      'SEED = "a project of its own"\n\n'
      "def reproduce(out_dir, quick=True):\n"
      '  return {"records": [{"experiment": "mine", "variant": "v", "metric": "m", "value": 1.0,\n'
      '                       "reference": 1.0, "source": "", "check": {"kind": "within", "tol": 0}}],\n'
      '          "figures": []}\n')
  records = reproduce.run(str(tmp_path / "out"), True, ["mine"], [str(folder)])
  assert [r["experiment"] for r in records] == ["mine"]
  assert "| mine | a project of its own |" in (tmp_path / "out" / "report.md").read_text()
