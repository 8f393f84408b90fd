"""Files a run writes whole or not at all, and the one-run-per-workdir lock.

``atomic_write`` writes beside the target, flushes to disk and renames into
place: a reader (or a run resumed after ``kill -9``) sees the old file or the
new one, never a part. ``WorkdirLock`` holds ``<workdir>/.lock`` (the owner's
host and pid) for the life of a run; a lock whose process is gone is stale and
taken over.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
import threading
from typing import Any

LOCK_FILE = ".lock"


def _create_beside(path: str) -> tuple[int, str]:
  """A new file beside ``path`` with the mode a plain ``open`` gives (0o666 less the
  umask; ``tempfile.mkstemp`` would make it 0o600, unreadable to the group)."""
  folder, name = os.path.split(os.path.abspath(path))
  for _ in range(100):
    tmp = os.path.join(folder, f".{name}.{os.urandom(4).hex()}.tmp")
    try:
      return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
    except FileExistsError:
      continue
  raise FileExistsError(f"{folder}: no free temporary name for {name}.")


def atomic_write(path: str, data: str | bytes) -> None:
  """Replaces ``path`` with ``data`` in one rename (mode as the umask allows)."""
  fd, tmp = _create_beside(path)
  try:
    with os.fdopen(fd, "wb" if isinstance(data, bytes) else "w") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def atomic_write_json(path: str, obj: Any, **dump_kw) -> None:
  atomic_write(path, json.dumps(obj, **dump_kw))


@contextlib.contextmanager
def signals_held():
  """Ctrl-C and SIGTERM that arrive inside the block are held, then raised again
  when it ends, so what the block writes is whole (main thread only; elsewhere a
  no-op). The handlers are swapped, not the signal mask: a mask covers one thread,
  and the kernel hands the signal to another (orbax's, XLA's)."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return
  pending: list[int] = []
  old = {s: signal.signal(s, lambda signum, frame: pending.append(signum))
         for s in (signal.SIGINT, signal.SIGTERM)}
  try:
    yield
  finally:
    for s, h in old.items():
      signal.signal(s, h)
    for s in dict.fromkeys(pending):
      signal.raise_signal(s)


def read_json(path: str) -> Any:
  """A JSON file's content; None when it is missing or not whole JSON."""
  try:
    with open(path) as f:
      return json.load(f)
  except (FileNotFoundError, json.JSONDecodeError):
    return None


class WorkdirBusy(RuntimeError):
  """Another live process holds the workdir."""


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


class WorkdirLock:
  """``with WorkdirLock(workdir):`` one run at a time in ``workdir``."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, LOCK_FILE)
    self.owner = {"host": socket.gethostname(), "pid": os.getpid()}

  def _holder(self) -> dict | None:
    try:
      with open(self.path) as f:
        return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
      return None

  def acquire(self) -> None:
    for _ in range(2):
      try:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
      except FileExistsError:
        held = self._holder()
        if held and held == self.owner:
          return  # this process already holds it
        if held and (held.get("host") != self.owner["host"] or _alive(int(held["pid"]))):
          raise WorkdirBusy(
              f"{os.path.dirname(self.path)} is in use by pid {held['pid']} on "
              f"{held['host']}; wait for it, or give another --workdir "
              f"(a lock left by a crashed process on another host: delete {self.path}).")
        try:  # stale (its process is gone) or half-written: take it over
          os.remove(self.path)
        except FileNotFoundError:
          pass
        continue
      with os.fdopen(fd, "w") as f:
        json.dump(self.owner, f)
      return
    raise WorkdirBusy(f"{os.path.dirname(self.path)}: another run took the lock just now.")

  def release(self) -> None:
    if self._holder() == self.owner:
      os.remove(self.path)

  def wait_released(self, timeout_s: float) -> bool:
    """Waits until no live process on this host holds the lock; False on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
      held = self._holder()
      if not held or held.get("host") != self.owner["host"] or not _alive(int(held["pid"])):
        return True
      time.sleep(0.1)
    return False

  def __enter__(self) -> "WorkdirLock":
    self.acquire()
    return self

  def __exit__(self, *exc) -> None:
    self.release()
