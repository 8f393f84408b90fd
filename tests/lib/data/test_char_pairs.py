"""Pair formats, vocabularies, arrays and the book's split."""
import numpy as np
import pytest

from lib.data import char_pairs as pairs
from lib.errors import DataError


def test_qa_lines_split_at_the_separator_and_keep_padding():
  qa = pairs.parse_qa_lines(["16+75  _91  \n", "795+3  _798 \n", "\n"])
  assert qa == [("16+75  ", "91  "), ("795+3  ", "798 ")]


@pytest.mark.parametrize("lines, where, what", [
    (["16+75  _91  ", "52+607_659 "], "src:2", "widths 6/4"),
    (["16+75  _91  ", "5260791  "], "src:2", "expected a question"),
])
def test_ragged_or_separatorless_qa_lines_name_the_line(lines, where, what):
  with pytest.raises(DataError, match=f"{where}.*{what}"):
    pairs.parse_qa_lines(lines, "src")


def test_pair_file_reads_anki_format_with_bom_attribution_and_blank_lines(tmp_path):
  p = tmp_path / "jpn.txt"
  p.write_bytes("\ufeffGo.\t行け。\tCC-BY 2.0 (France)\n\nHi.\tやっほー。\n".encode("utf-8"))
  f = pairs.read_pair_file(str(p))
  assert f.pairs == [("Go.", "行け。"), ("Hi.", "やっほー。")] and f.skipped == []


def _bad_file(tmp_path):
  p = tmp_path / "bad.txt"
  p.write_bytes("Go.\t行け。\n".encode() + b"Run!\t\xff\xfe\n" + "No tab here\n".encode()
                + "Wow!\tすごい!\n".encode() + b" \tfoo\n")
  return str(p)


def test_malformed_pair_lines_raise_with_the_line_number(tmp_path):
  path = _bad_file(tmp_path)
  with pytest.raises(DataError, match=r"bad.txt:2: not UTF-8.*skip_bad_lines"):
    pairs.read_pair_file(path)


def test_malformed_pair_lines_are_skipped_and_counted_on_request(tmp_path):
  f = pairs.read_pair_file(_bad_file(tmp_path), skip_bad_lines=True)
  assert f.pairs == [("Go.", "行け。"), ("Wow!", "すごい!")]
  assert [n for n, _ in f.skipped] == [2, 3, 5]
  assert "no tab" in f.skipped[1][1] and "empty" in f.skipped[2][1]


def test_pair_lines_round_trip(tmp_path):
  pp = [("one", "一"), ("two", "二")]
  (tmp_path / "p.txt").write_text(pairs.format_pair_lines(pp, "generated"), encoding="utf-8")
  assert pairs.read_pair_file(str(tmp_path / "p.txt")).pairs == pp


def test_fixed_width_arrays_follow_the_book():
  qa = pairs.parse_qa_lines(["16+75  _91  ", "795+3  _798 "])
  v = pairs.char_vocab([q + "_" + a for q, a in qa])
  a = pairs.encode_pairs(qa, v, v, start="_")
  assert a["src"].shape == (2, 7) and a["tgt_in"].shape == (2, 4)
  assert v.decode_text(a["src"][0]) == "16+75  "
  assert v.decode_text(a["tgt_in"][0]) == "_91 " and v.decode_text(a["tgt_out"][0]) == "91  "
  assert a["tgt_mask"].all() and (a["src_len"] == 7).all()


def test_ragged_arrays_pad_and_mask_and_end_with_the_stop_symbol():
  pp = [("Go.", "行け。"), ("Hello!", "やあ")]
  sv = pairs.char_vocab([s for s, _ in pp], specials=(pairs.PAD,))
  tv = pairs.char_vocab([t for _, t in pp], specials=(pairs.PAD, "\t", "\n"))
  a = pairs.encode_pairs(pp, sv, tv, start="\t", end="\n")
  assert a["src"].shape == (2, 6) and list(a["src_len"]) == [3, 6]
  assert list(a["src"][0, 3:]) == [0, 0, 0]
  assert a["tgt_out"].shape == (2, 4)
  assert tv.decode_text(a["tgt_out"][1]) == "やあ\n" and list(a["tgt_mask"][1]) == [1, 1, 1, 0]
  assert tv.decode_text(a["tgt_in"][1]) == "\tやあ" and a["tgt_in"][1, 3] == 0
  assert list(a["tgt_mask"][0]) == [1, 1, 1, 1]


def test_split_is_the_books_seeded_shuffle_with_the_last_tenth_held_out():
  train, valid = pairs.split_indices(50_000, 0.1, 1984)
  assert (len(train), len(valid)) == (45_000, 5_000)
  # The book: indices = np.arange(n); np.random.seed(1984); np.random.shuffle(indices).
  idx = np.arange(50_000)
  np.random.RandomState(1984).shuffle(idx)
  np.testing.assert_array_equal(np.concatenate([train, valid]), idx)
  train, valid = pairs.split_indices(10, 0.2, None)  # Keras validation_split: last, unshuffled
  assert list(valid) == [8, 9] and list(train) == list(range(8))
