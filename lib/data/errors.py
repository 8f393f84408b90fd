"""The one error type of bad input data."""


class DataError(ValueError):
  """Malformed input; the message names the file, the line and what was expected
  (``reddit.csv:874: record 212 ... looks truncated``). Entry points print it as one
  line and exit 1."""
