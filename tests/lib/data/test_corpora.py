"""Corpus readers: errors name the file and line; the embedded corpus needs no download."""
import pytest

from lib.data import corpora
from lib.errors import DataError

GOOD = 'body,score\n"first comment. two sentences!",1\n"multi\nline ""quoted""",2\n'


def write(tmp_path, name, content):
  p = tmp_path / name
  p.write_text(content)
  return str(p)


def test_csv_column_reads_quoted_multiline_records(tmp_path):
  assert corpora.read_csv_column(write(tmp_path, "a.csv", GOOD)) == [
      "first comment. two sentences!", 'multi\nline "quoted"']


def test_truncated_csv_names_the_line(tmp_path):
  path = write(tmp_path, "t.csv", GOOD + '"this record is cut off\nin the middle')
  with pytest.raises(DataError) as e:
    corpora.read_csv_column(path)
  msg = str(e.value)
  assert f"{path}:5:" in msg and "record 3" in msg and "truncated" in msg
  assert "skip_bad_records" in msg
  assert len(corpora.read_csv_column(path, skip_bad_records=True)) == 2


def test_csv_wrong_field_count_and_missing_column(tmp_path):
  path = write(tmp_path, "w.csv", 'body,score\n"ok",1\n"bad",1,extra\n')
  with pytest.raises(DataError, match=r"w.csv:3: record 2 has 3 fields; the header has 2"):
    corpora.read_csv_column(path)
  with pytest.raises(DataError, match=r":1: header .* has no column 'text'"):
    corpora.read_csv_column(path, "text")
  with pytest.raises(DataError, match=":1: empty file"):
    corpora.read_csv_column(write(tmp_path, "e.csv", ""))


def test_read_ptb_and_bad_input(tmp_path):
  path = write(tmp_path, "ptb.train.txt", " the cat <unk> sat \n\n a dog \n")
  assert corpora.read_ptb(path) == [["the", "cat", "<unk>", "sat"], ["a", "dog"]]
  bad = write(tmp_path, "bad.txt", "ok line\nword\tother\n")
  with pytest.raises(DataError, match="bad.txt:2: expected space-separated tokens"):
    corpora.read_ptb(bad)
  with pytest.raises(FileNotFoundError, match="ptb.valid.txt"):
    corpora.ptb_paths(str(tmp_path))


def test_embedded_text_is_english_prose():
  t = corpora.embedded_text()
  assert len(t.split()) > 30000
  assert " the " in t and ">>>" not in t
