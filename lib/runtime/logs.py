"""rnnlab's log set-up, installed by entry points (importing this changes nothing).

A run prints rnnlab's own lines (progress, evaluations, results) and every
library's warnings and errors; libraries' INFO lines (orbax logs each
checkpoint step at INFO) are dropped.
"""
from __future__ import annotations

import logging as py_logging
import os

from absl import logging

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_OWN = ("lib", "experiments", "launch", "tests")


def is_own(pathname: str) -> bool:
  """True for a record logged from rnnlab's own source files."""
  rel = os.path.relpath(os.path.abspath(pathname), _REPO)
  return rel.split(os.sep)[0] in _OWN


class LibraryInfoFilter(py_logging.Filter):
  """Keeps warnings and errors of everyone, and rnnlab's own INFO lines."""

  def filter(self, record: py_logging.LogRecord) -> bool:
    return record.levelno >= py_logging.WARNING or is_own(record.pathname)


_FILTER = LibraryInfoFilter()


def quiet_libraries() -> None:
  """Installs :class:`LibraryInfoFilter` on absl's handler and Python's root
  handlers (idempotent). Entry points call it once, before running."""
  handlers = [logging.get_absl_handler(), *py_logging.getLogger().handlers]
  for h in handlers:
    if _FILTER not in h.filters:
      h.addFilter(_FILTER)
