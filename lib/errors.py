"""The error types every layer of ``lib`` may raise (this module imports nothing):
bad input, data files and config values, and the ways a run stops. Entry points
print them as one line, without a traceback."""


class DataError(ValueError):
  """Malformed input; the message names the file, the line and what was expected
  (``reddit.csv:874: record 212 ... looks truncated``). Entry points print it as one
  line and exit 1."""


class ConfigError(ValueError):
  """A config value that would make a run meaningless (an unknown name, a duration
  or size that must be positive); the message names the key and what was expected.
  Entry points print it as one line and exit 2, before anything runs."""


class StorageError(RuntimeError):
  """A checkpoint could not be written (an unwritable or full folder)."""


class ConfigChanged(ValueError):
  """A resume with a config other than the one the workdir's run started with."""


class NonFiniteError(RuntimeError):
  """Training produced NaN or Inf; the last good checkpoint is kept."""


class Preempted(KeyboardInterrupt):
  """SIGTERM arrived (a scheduler's preemption); handled like Ctrl-C."""
