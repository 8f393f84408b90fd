"""Bad input, as an entry point reports it: one line naming the file (or key) and
what was expected, exit status 1, no traceback."""
import pytest

from experiments.counting import config as counting_config, experiment as counting
from experiments.rnnlm import config as rnnlm_config, experiment as rnnlm
from experiments.translation import config as translation_config, experiment as translation
from experiments.word2vec import config as word2vec_config, experiment as word2vec
from lib.runtime import cli


def _one_line_error(fn, capsys) -> str:
  with pytest.raises(SystemExit) as e:
    cli.run_reporting_errors(fn)
  err = capsys.readouterr().err
  assert e.value.code == 1 and err.count("\n") == 1 and err.startswith("error: "), err
  return err.strip()


def test_a_folder_given_as_a_data_file(tmp_path, capsys):
  c = translation_config.get_config()
  c.data.path = str(tmp_path)
  assert _one_line_error(lambda: translation.load(c.data), capsys) == (
      f"error: {tmp_path}: is a folder; expected a file")


def test_a_translation_file_of_one_pair(tmp_path, capsys):
  (tmp_path / "one.txt").write_text("Go.\tVa !\tCC-BY 2.0\n")
  c = translation_config.get_config()
  c.data.path = str(tmp_path / "one.txt")
  err = _one_line_error(lambda: translation.load(c.data), capsys)
  assert err.startswith(f"error: {tmp_path}/one.txt: 1 pair(s); holding out data.valid=0.2")


def test_analogies_that_are_not_utf8(tmp_path, capsys):
  (tmp_path / "q.txt").write_bytes(b": capital\nathens greece \xff baghdad iraq\n")
  c = word2vec_config.get_config()
  c.data.analogies = str(tmp_path / "q.txt")
  assert _one_line_error(lambda: word2vec.Data(c), capsys) == (
      f"error: {tmp_path}/q.txt:2: not UTF-8 text (invalid start byte).")


def test_a_corpus_too_small_for_any_pair_is_not_called_diverged(tmp_path, capsys):
  (tmp_path / "tiny.txt").write_text("the cat sat\n")
  c = word2vec_config.get_config()
  c.data.corpus, c.data.min_count = str(tmp_path / "tiny.txt"), 1
  err = _one_line_error(lambda: word2vec.Data(c), capsys)
  assert "give no (center, context) pair" in err and "diverged" not in err


def test_a_split_too_small_for_one_window(tmp_path, capsys):
  for split, n in (("train", 40), ("valid", 1), ("test", 1)):
    (tmp_path / f"ptb.{split}.txt").write_text(" the cat sat on a mat \n" * n)
  c = rnnlm_config.get_config("ptb_small")
  c.data.path = str(tmp_path)
  err = _one_line_error(lambda: rnnlm.build(c), capsys)
  assert "hold no window of 20 steps (num_steps)" in err


def test_a_workdir_under_a_regular_file(tmp_path, capsys):
  (tmp_path / "file").write_text("x")
  c = counting_config.get_config()
  assert _one_line_error(lambda: counting.run(c, str(tmp_path / "file" / "run"), verbose=False),
                         capsys) == (
      f"error: {tmp_path}/file/run: a part of this path is a regular file, not a folder")
