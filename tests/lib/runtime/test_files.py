"""Whole-or-absent files, held signals and the one-run-per-workdir lock."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from lib.runtime import files


def test_atomic_write_replaces_whole_or_leaves_the_old_file(tmp_path, monkeypatch):
  path = tmp_path / "summary.json"
  files.atomic_write(str(path), '{"a": 1}')
  assert json.loads(path.read_text()) == {"a": 1}

  def dies(src, dst):  # a kill between writing the new text and renaming it into place
    raise KeyboardInterrupt
  monkeypatch.setattr(os, "replace", dies)
  with pytest.raises(KeyboardInterrupt):
    files.atomic_write(str(path), '{"a": 2}')
  assert json.loads(path.read_text()) == {"a": 1}
  assert os.listdir(tmp_path) == ["summary.json"]  # no temporary left behind


def test_a_live_lock_refuses_with_one_line_and_a_stale_one_is_taken(tmp_path):
  lock = tmp_path / files.LOCK_FILE
  live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
  try:
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": live.pid}))
    with pytest.raises(files.WorkdirBusy, match=f"in use by pid {live.pid}"):
      files.WorkdirLock(str(tmp_path)).acquire()
  finally:
    live.kill()
    live.wait()
  with files.WorkdirLock(str(tmp_path)):  # its process is gone: stale, taken over
    assert json.loads(lock.read_text())["pid"] == os.getpid()
  assert not lock.exists()
  lock.write_text(json.dumps({"host": "another-host", "pid": 1}))
  with pytest.raises(files.WorkdirBusy, match="another-host"):
    files.WorkdirLock(str(tmp_path)).acquire()


def test_signals_wait_for_the_block_even_with_other_threads_running():
  seen = []
  old = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
  stop = threading.Event()
  other = threading.Thread(target=stop.wait)  # a thread the kernel may hand the signal to
  other.start()
  try:
    with files.signals_held():
      os.kill(os.getpid(), signal.SIGTERM)
      time.sleep(0.2)
      assert seen == []  # held: the block finishes first
    time.sleep(0.05)
    assert seen == [signal.SIGTERM]  # then delivered, once
  finally:
    stop.set()
    other.join()
    signal.signal(signal.SIGTERM, old)


@pytest.fixture
def umask():
  def set_to(mask):
    old.append(os.umask(mask))
  old = []
  yield set_to
  if old:
    os.umask(old[0])


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_atomic_write_gives_the_mode_the_umask_allows(tmp_path, umask, mask, mode):
  umask(mask)
  path = tmp_path / "summary.json"
  files.atomic_write(str(path), "{}")
  files.atomic_write(str(path), '{"again": 1}')  # replacing keeps to the umask too
  assert os.stat(path).st_mode & 0o777 == mode


@pytest.mark.slow
def test_every_file_of_a_run_and_its_resume_is_readable_by_the_group(tmp_path, umask):
  """Under umask 022 a run's files (config, summary, metrics after a resume, plots,
  checkpoints) are 644, so colleagues on a shared file system can read them."""
  from experiments.counting import config as config_lib, experiment
  umask(0o022)
  c = config_lib.get_config("rmsprop")
  c.trainer.num_epochs = 20
  experiment.run(c, str(tmp_path), verbose=False)
  c.trainer.num_epochs, c.trainer.resume_longer = 30, True  # resumes from the checkpoint
  experiment.run(c, str(tmp_path), verbose=False)
  modes = {os.path.relpath(os.path.join(d, f), tmp_path): os.stat(os.path.join(d, f)).st_mode & 0o777
           for d, _, fs in os.walk(tmp_path) for f in fs}
  assert {"config.json", "summary.json", "metrics.jsonl"} <= set(modes)
  assert {p: oct(m) for p, m in modes.items() if m != 0o644} == {}
