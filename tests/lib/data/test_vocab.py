"""The one vocabulary: word vocabularies by frequency, character vocabularies with
specials, unknown and padding tokens, save and load."""
import numpy as np
import pytest

from lib.data import char_pairs as pairs, text
from lib.data.vocab import Vocab


def sentences():
  return [["a", "b", "a"], ["c", "a", "b"], ["d"]]


def test_vocab_keeps_most_frequent_plus_specials_and_unknown():
  v = Vocab.build(sentences(), size=5)   # 2 specials + 2 words + unknown
  assert v.tokens == [text.START, text.END, "a", "b", text.UNKNOWN]
  assert len(v) == 5 and v.unk_id == 4
  assert v.id("c") == v.unk_id and v.id("zzz") == v.unk_id
  assert list(v.encode(["a", "c", text.END])) == [2, 4, 1]


def test_vocab_round_trip_and_save_load(tmp_path):
  v = Vocab.build(sentences())
  toks = [text.START, "d", "a", "c", text.END]
  assert v.decode(v.encode(toks)) == toks
  v.save(str(tmp_path / "v.json"))
  w = Vocab.load(str(tmp_path / "v.json"))
  assert w.tokens == v.tokens and w.unk_id == v.unk_id


def test_unknown_token_in_text_maps_to_unknown_id():
  v = Vocab.build([["x", "<unk>", "<unk>"]], unk="<unk>", specials=("<eos>",))
  assert v.tokens == ["<eos>", "x", "<unk>"]
  assert list(v.encode(["<unk>", "y"])) == [v.unk_id, v.unk_id]


def test_vocab_rejects_too_small_size():
  with pytest.raises(ValueError, match="no room"):
    Vocab.build(sentences(), size=2)


def test_vocab_specials_first_then_sorted_chars_and_round_trip(tmp_path):
  v = pairs.char_vocab(["ba", "ac"], specials=(pairs.PAD, "\t"))
  assert v.tokens == [pairs.PAD, "\t", "a", "b", "c"] and v.pad == pairs.PAD and v.unk is None
  np.testing.assert_array_equal(v.encode("cab"), [4, 2, 3])
  assert v.decode_text([4, 0, 2, 1, 3], stop=1) == "ca"  # pad dropped, stops before id 1
  assert v.decode([4, 0, 2]) == ["c", "a"]
  with pytest.raises(KeyError, match="'z'"):
    v.encode("az")
  v.save(tmp_path / "v.json")
  assert Vocab.load(tmp_path / "v.json") == v
  assert Vocab.load(tmp_path / "v.json").tokens == v.tokens


def test_unknown_characters_map_to_unk_when_present():
  v = pairs.char_vocab(["ab"], specials=(pairs.PAD, pairs.UNK))
  np.testing.assert_array_equal(v.encode("aXb"), [2, 1, 3])


def test_vocab_in_a_given_order_with_counts():
  v = Vocab(["the", "UNK", "cat"], unk="UNK", counts=[5, 3, 1])
  assert v.counts.tolist() == [5, 3, 1] and v.id("dog") == 1 and len(v) == 3
  with pytest.raises(ValueError, match="Duplicate"):
    Vocab(["a", "a"])
  with pytest.raises(ValueError, match="unknown token"):
    Vocab(["a"], unk="<unk>")
