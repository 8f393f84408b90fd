"""Records of a prepared TensorFlow Datasets dataset, read by index, without TensorFlow.

A dataset prepared in the ``array_record`` file format (``tfds build
--file_format=array_record``, or ``builder.download_and_prepare()`` of a builder
made with ``file_format="array_record"``) is read through
``tfds.data_source``: random access by index, no ``tf.data``. The experiments
read the fields they need into memory once and batch them with their usual
step-indexed sources, so a run on TFDS data resumes exactly as one on files.

``name`` is a TFDS name with an optional config and version
(``glue/stsb``, ``ted_hrlr_translate/pt_to_en:1.0.0``); ``data_dir`` the folder
holding it (TFDS' default, ``~/tensorflow_datasets``, when empty). A missing
dataset, split or field is a :class:`DataError` naming all three.

Preparing needs TensorFlow only where a builder's own code calls it. By their
source in tensorflow-datasets 4.9.10: ``lm1b`` reads its archive with
``tf.io.gfile`` (prepare it where TensorFlow is installed, then copy the
folder); ``glue`` and ``ted_hrlr_translate`` read through ``etils.epath`` and
prepare without it (``tfds build glue/stsb --file_format=array_record
--data_dir=DIR``). A dataset of your own: a ``tfds.core.GeneratorBasedBuilder``
made with ``file_format="array_record"``, then ``download_and_prepare()``
(``tests/lib/data/tfds_builders.py`` does it in a few lines).
"""
from __future__ import annotations

from typing import Any, Sequence

from lib.errors import ConfigError, DataError

_CHUNK = 1024  # records per __getitems__ call


def _tfds():
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:  # pragma: no cover - installed by requirements.txt
    raise DataError("data.tfds needs tensorflow-datasets: pip install 'rnnlab[tfds]'") from e
  return tfds


def where(name: str, split: str, data_dir: str) -> str:
  return f"tfds {name!r} split {split!r} (data_dir={data_dir or '~/tensorflow_datasets'})"


def open_split(name: str, split: str, data_dir: str = "") -> Any:
  """The random-access data source of one split (``len``, ``[i]``, ``__getitems__``)."""
  tfds = _tfds()
  try:
    return tfds.data_source(name, split=split, data_dir=data_dir or None)
  except Exception as e:  # tfds raises several types for a missing name, split or format
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise DataError(f"{where(name, split, data_dir)}: cannot open it ({first}); prepare it "
                    "with file_format='array_record' (see WORKSPACE.md, 'TFDS').") from None


def _text(value: Any) -> Any:
  return value.decode("utf-8") if isinstance(value, bytes) else value


def read_fields(name: str, split: str, fields: Sequence[str], data_dir: str = "",
                max_records: int = 0) -> list[tuple]:
  """Each record's ``fields`` as a tuple (text decoded to ``str``), in index order.

  ``max_records > 0`` reads only the first that many.
  """
  source = open_split(name, split, data_dir)
  n = len(source) if max_records <= 0 else min(max_records, len(source))
  out: list[tuple] = []
  for start in range(0, n, _CHUNK):
    records = source.__getitems__(list(range(start, min(start + _CHUNK, n))))
    if start == 0 and records:
      missing = [f for f in fields if f not in records[0]]
      if missing:
        raise DataError(f"{where(name, split, data_dir)}: no field(s) {missing}; its fields: "
                        f"{sorted(records[0])}.")
    out.extend(tuple(_text(r[f]) for f in fields) for r in records)
  if not out:
    raise DataError(f"{where(name, split, data_dir)}: no records.")
  return out


def parse_names(spec: str, count: int, key: str) -> list[str]:
  """``'sentence1,sentence2,label'`` -> the names, exactly ``count`` of them (``key`` names
  the config key in the error)."""
  names = [s.strip() for s in spec.split(",") if s.strip()]
  if len(names) != count:
    raise ConfigError(f"{key}={spec!r}: expected {count} comma-separated names.")
  return names
