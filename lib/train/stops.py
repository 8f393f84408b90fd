"""Stop requests: Ctrl-C and SIGTERM taken where the training loop can stop cleanly."""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Optional

from lib.errors import Preempted


@contextlib.contextmanager
def sigterm_as_interrupt():
  """Inside the block, SIGTERM raises :class:`Preempted` (main thread only), so a
  scheduler's preemption unwinds like Ctrl-C: save, then stop."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return

  def handler(signum, frame):
    raise Preempted(f"signal {signum}")

  old = signal.signal(signal.SIGTERM, handler)
  try:
    yield
  finally:
    signal.signal(signal.SIGTERM, old)


class StopRequests:
  """Ctrl-C and SIGTERM during training, taken at a safe point: the first one is
  noted (``signum``) and :meth:`check` (called where the state, the step count and
  the written records agree) raises it; a second one raises at once. Main thread
  only; elsewhere the signals keep their handlers."""

  def __init__(self):
    self.signum: Optional[int] = None
    self._old: dict = {}

  def __enter__(self) -> "StopRequests":
    if threading.current_thread() is threading.main_thread():
      self._old = {s: signal.signal(s, self._note) for s in (signal.SIGINT, signal.SIGTERM)}
    return self

  def __exit__(self, *exc) -> None:
    for s, h in self._old.items():
      signal.signal(s, h)

  def _note(self, signum, frame) -> None:
    if self.signum is not None:  # asked twice: stop now
      self._raise(signum)
    self.signum = signum

  def check(self) -> None:
    if self.signum is not None:
      self._raise(self.signum)

  @staticmethod
  def _raise(signum: int) -> None:
    if signum == signal.SIGTERM:
      raise Preempted(f"signal {signum}")
    raise KeyboardInterrupt
