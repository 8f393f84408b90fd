"""Reading a prepared TFDS dataset by index, and the errors that name what is missing."""
import pytest

from lib.data import tfds_source
from lib.errors import ConfigError, DataError
from tests.lib.data import tfds_builders


@pytest.fixture(scope="module")
def stsb_dir(tmp_path_factory):
  d = tmp_path_factory.mktemp("tfds")
  pairs = [(f"a man plays {i}", "a man plays", i % 6) for i in range(1500)]
  tfds_builders.sentence_pairs(d, {"train": pairs, "validation": pairs[:7]})
  return str(d)


def test_reads_fields_in_index_order_across_chunks(stsb_dir):
  rows = tfds_source.read_fields("glue/stsb", "train", ["sentence1", "label"], stsb_dir)
  assert len(rows) == 1500  # more than one chunk of __getitems__
  source = tfds_source.open_split("glue/stsb", "train", stsb_dir)
  for i in (0, 1023, 1024, 1499):  # the source's own order (TFDS shuffles when it prepares)
    assert rows[i] == (source[i]["sentence1"].decode(), source[i]["label"])
  assert sorted(rows) == sorted((f"a man plays {i}", float(i % 6)) for i in range(1500))
  assert len(tfds_source.read_fields("glue/stsb", "validation", ["idx"], stsb_dir,
                                     max_records=3)) == 3


def test_missing_dataset_split_or_field_is_one_clear_line(stsb_dir):
  with pytest.raises(DataError, match=r"tfds 'glue/stsb' split 'train'.*no field\(s\) "
                                       r"\['sentence3'\]; its fields: \['idx', 'label'"):
    tfds_source.read_fields("glue/stsb", "train", ["sentence3"], stsb_dir)
  with pytest.raises(DataError, match=r"split 'test'.*cannot open it"):
    tfds_source.read_fields("glue/stsb", "test", ["idx"], stsb_dir)
  with pytest.raises(DataError, match=r"tfds 'no_such_set' .*cannot open it.*array_record"):
    tfds_source.open_split("no_such_set", "train", stsb_dir)
  with pytest.raises(ConfigError, match=r"data.tfds_fields='a,b': expected 3"):
    tfds_source.parse_names("a,b", 3, "data.tfds_fields")
