"""Whole-or-absent files and the one-run-per-workdir lock."""
import json
import os
import socket
import subprocess
import sys

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
