"""Workdirs behind a URI: a local staging folder mirrored to and from the remote side.
``gs://`` is served by epath's test mock from a local folder (no network, no gcsfs)."""
import os

import pytest
from etils import epath
from etils.epath import testing as epath_testing

from lib.errors import ConfigError
from lib.runtime import workdirs


@pytest.fixture
def bucket(tmp_path, monkeypatch):
  """``gs://...`` paths as files under ``tmp_path/gcs``; the staging folders under ``tmp_path``."""
  root = str(tmp_path / "gcs")
  os.makedirs(root)
  monkeypatch.setenv("RNNLAB_STAGING", str(tmp_path / "staging"))
  local = lambda p: os.fspath(p).replace("gs://", root + "/", 1)  # noqa: E731
  remote = lambda p: p.replace(root + "/", "gs://", 1) if isinstance(p, str) else p  # noqa: E731
  one = lambda orig, path, *a, **k: orig(local(path), *a, **k)  # noqa: E731
  two = lambda orig, path, dst, *a, **k: orig(local(path), local(dst), *a, **k)  # noqa: E731

  def walk(orig, top, **kw):
    for folder, dirs, files in orig(local(top), **kw):
      yield remote(folder), dirs, files

  fns = {n: one for n in ("exists", "isdir", "listdir", "makedirs", "mkdir", "open", "remove",
                          "rmtree", "stat")}
  with epath_testing.mock_epath(**fns, rename=two, replace=two, copy=two, walk=walk,
                                glob=lambda orig, p: [remote(x) for x in orig(local(p))]):
    yield root


def test_uris_are_remote_and_local_paths_are_not():
  assert workdirs.is_remote("gs://b/run") and workdirs.is_remote("s3://b/run")
  assert not workdirs.is_remote("runs/x") and not workdirs.is_remote("/abs/gs:/x")
  assert workdirs.staging_dir("gs://b/runs/ptb") != workdirs.staging_dir("gs://c/runs/ptb")
  assert os.path.basename(workdirs.staging_dir("gs://b/runs/ptb/")).startswith("ptb-")


def test_a_run_in_a_staged_workdir_lands_remotely_and_resumes_on_a_new_host(bucket, tmp_path,
                                                                              monkeypatch):
  from experiments.counting import config as config_lib, experiment
  monkeypatch.chdir(tmp_path)
  c = config_lib.get_config("rmsprop")
  c.trainer.num_epochs, c.trainer.tensorboard = 3, False
  with workdirs.staged("gs://lab/runs/counting") as local:
    first = experiment.run(c, local, verbose=False)
  run_dir = os.path.join(bucket, "lab", "runs", "counting")
  assert first["status"] == "completed"
  assert {"summary.json", "config.json", "metrics.jsonl", "checkpoints"} <= set(os.listdir(run_dir))
  assert not os.path.exists(tmp_path / "gs:")  # no local folder named after the scheme
  assert not os.path.exists(os.path.join(run_dir, ".lock"))  # the lock stays on its host

  import shutil
  shutil.rmtree(local)  # a new host: nothing staged
  c.trainer.num_epochs, c.trainer.resume_longer = 6, True
  with workdirs.staged("gs://lab/runs/counting") as local:
    assert os.path.exists(os.path.join(local, "summary.json"))  # pulled for the resume
    again = experiment.run(c, local, verbose=False)
  assert again["resumed_from"] == first["steps"] and again["steps"] > first["steps"]
  assert epath.Path("gs://lab/runs/counting/summary.json").read_text() == open(
      os.path.join(local, "summary.json")).read()


def test_the_mirror_copies_only_what_changed_and_the_trainer_refuses_a_uri(bucket, tmp_path):
  local = tmp_path / "stage"
  (local / "sub").mkdir(parents=True)
  (local / "a.txt").write_text("1")
  (local / "sub" / "b.txt").write_text("2")
  (local / ".a.txt.tmp123").write_text("partial")
  mirror = workdirs.Mirror(str(local), "gs://lab/m")
  assert mirror.push() == 2 and mirror.push() == 0
  (local / "a.txt").write_text("11")
  assert mirror.push() == 1
  assert epath.Path("gs://lab/m/a.txt").read_text() == "11"
  assert not epath.Path("gs://lab/m/.a.txt.tmp123").exists()
  from lib.train import trainer
  with pytest.raises(ConfigError, match=r"workdir 'gs://lab/x' is a URI.*staged"):
    trainer.fit(None, None, "gs://lab/x")


def test_a_scheme_without_a_file_system_is_one_line(tmp_path, monkeypatch):
  monkeypatch.setenv("RNNLAB_STAGING", str(tmp_path))
  with pytest.raises(ConfigError, match=r"workdir 's3://lab/x': no file system for its scheme"):
    with workdirs.staged("s3://lab/x"):
      pass
  with pytest.raises(ConfigError, match=r"workdir 'ftp://lab/x': etils.epath reaches gs://"):
    with workdirs.staged("ftp://lab/x"):
      pass


def test_several_hosts_refuse_a_uri_workdir():
  import subprocess
  import sys
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
  out = subprocess.run([sys.executable, "-m", "experiments.counting.main", "--workdir=gs://lab/x",
                        "--config.trainer.distributed=True", "--config.trainer.data_parallel=True"],
                       cwd=root, capture_output=True,
                       text=True, env={**os.environ, "PYTHONPATH": root}, timeout=120)
  assert out.returncode == 2
  assert "several hosts need a workdir on a file system they all see" in out.stderr
