"""The error types of bad input, data files and config values alike: entry points
print them as one line, without a traceback."""


class DataError(ValueError):
  """Malformed input; the message names the file, the line and what was expected
  (``reddit.csv:874: record 212 ... looks truncated``). Entry points print it as one
  line and exit 1."""


class ConfigError(ValueError):
  """A config value that would make a run meaningless (an unknown name, a duration
  or size that must be positive); the message names the key and what was expected.
  Entry points print it as one line and exit 2, before anything runs."""
