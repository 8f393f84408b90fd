"""Workdirs on any file system ``etils.epath`` reaches (``gs://``, ``s3://``, ...).

A run appends to ``metrics.jsonl`` and TensorBoard event files, takes a lock
file and renames files into place: operations object stores do not have. So a
run whose workdir is a URI works in a local staging folder, mirrored from the
remote workdir when it starts (a resume sees the checkpoints and metrics
there) and mirrored back every ``sync_every_s`` seconds and when the run ends,
however it ends (completed, failed, Ctrl-C, SIGTERM)::

    with workdirs.staged("gs://bucket/runs/ptb_small") as local:
        experiment.run(config, local)

Experiment entry points (``--workdir=gs://...``) do this themselves. Only
changed files are copied (by size and modification time); ``.lock`` and
temporary files stay local. Staging folders live under ``$RNNLAB_STAGING``
(default: the system's temporary folder). A URI without a backend installed
(``gcsfs`` for ``gs://``, ``s3fs`` for ``s3://``) fails when the run starts.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import threading
from typing import Iterator

from etils import epath

from lib.errors import ConfigError

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
SCHEMES = ("gs", "s3", "az", "hf")  # the URI schemes etils.epath serves (through fsspec)


def is_remote(path: str) -> bool:
  """Whether ``path`` is a URI (``gs://...``) rather than a local path."""
  return bool(_URI.match(str(path)))


def staging_dir(remote: str) -> str:
  """The local folder that stands for ``remote`` (stable across runs on this host)."""
  tag = hashlib.sha1(remote.encode()).hexdigest()[:12]
  name = remote.rstrip("/").rsplit("/", 1)[-1] or "workdir"
  return os.path.join(os.environ.get("RNNLAB_STAGING", tempfile.gettempdir()),
                      "rnnlab-staging", f"{name}-{tag}")


def _skip(rel: str) -> bool:
  """Dot files stay local: ``.lock`` (this host's process) and atomic writes' temporaries."""
  return os.path.basename(rel).startswith(".")


def pull(remote: str, local: str) -> list[str]:
  """Copies the files of ``remote`` into ``local``; returns their relative paths."""
  root, done = epath.Path(remote), []
  if not root.exists():
    return done
  for folder, _, names in root.walk():
    for name in names:
      rel = os.path.relpath(str(folder / name), str(root))
      if _skip(rel):
        continue
      target = os.path.join(local, rel)
      os.makedirs(os.path.dirname(target), exist_ok=True)
      with open(target, "wb") as f:
        f.write((folder / name).read_bytes())
      done.append(rel)
  return done


class Mirror:
  """Copies what changed in a local folder to its remote twin (see the module docstring)."""

  def __init__(self, local: str, remote: str):
    self.local, self.remote = local, remote
    self._sent: dict[str, tuple[int, int]] = {}
    self._lock = threading.Lock()

  def mark_sent(self, rels: list[str]) -> None:
    """Files already on the remote side as they are here (just pulled)."""
    for rel in rels:
      st = os.stat(os.path.join(self.local, rel))
      self._sent[rel] = (st.st_size, st.st_mtime_ns)

  def push(self) -> int:
    """Copies new and changed files; returns how many."""
    n = 0
    with self._lock:
      for folder, _, names in os.walk(self.local):
        for name in names:
          path = os.path.join(folder, name)
          rel = os.path.relpath(path, self.local)
          try:
            st = os.stat(path)
          except FileNotFoundError:  # renamed away while we walked (an atomic write)
            continue
          stamp = (st.st_size, st.st_mtime_ns)
          if _skip(rel) or self._sent.get(rel) == stamp:
            continue
          target = epath.Path(self.remote) / rel
          target.parent.mkdir(parents=True, exist_ok=True)
          with open(path, "rb") as f:
            target.write_bytes(f.read())
          self._sent[rel], n = stamp, n + 1
    return n


@contextlib.contextmanager
def staged(workdir: str, sync_every_s: float = 60.0) -> Iterator[str]:
  """Yields a local folder for ``workdir``: ``workdir`` itself when it is local,
  else a staging folder mirrored to and from it (module docstring)."""
  if not is_remote(workdir):
    yield workdir
    return
  scheme = workdir.split("://", 1)[0]
  if scheme not in SCHEMES:
    raise ConfigError(f"workdir {workdir!r}: etils.epath reaches {', '.join(f'{s}://' for s in SCHEMES)} "
                      f"and local paths, not {scheme}://.")
  local = staging_dir(workdir)
  os.makedirs(local, exist_ok=True)
  mirror, stop = Mirror(local, workdir), threading.Event()
  try:
    mirror.mark_sent(pull(workdir, local))
  except ImportError as e:  # fsspec without the scheme's file system (gcsfs, s3fs)
    raise ConfigError(f"workdir {workdir!r}: no file system for its scheme here ({e}).") from None

  def loop():
    while not stop.wait(sync_every_s):
      mirror.push()

  thread = threading.Thread(target=loop, name="workdir-mirror", daemon=True)
  thread.start()
  try:
    yield local
  finally:
    stop.set()
    thread.join()
    mirror.push()
