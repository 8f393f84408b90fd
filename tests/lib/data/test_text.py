"""Tokenizing, sentence splitting and the vocabulary (notes 001's preprocessing)."""
import pytest

from lib.data import text


def test_word_tokenize_follows_treebank_conventions():
  assert text.word_tokenize("what are n't you understanding about this ? !") == [
      "what", "are", "n't", "you", "understanding", "about", "this", "?", "!"]
  assert text.word_tokenize("I don't know, it's 3.14.") == [
      "I", "do", "n't", "know", ",", "it", "'s", "3.14", "."]
  assert text.word_tokenize("can't stop: see http://x.org/a.") == [
      "ca", "n't", "stop", ":", "see", "http://x.org/a", "."]


def test_split_sentences_keeps_abbreviations_and_splits_paragraphs():
  got = text.split_sentences("Mr. Smith came. Did he? Yes!\n\nNew paragraph without stop")
  assert got == ["Mr. Smith came.", "Did he?", "Yes!", "New paragraph without stop"]


def test_tokenize_sentences_lowercases():
  assert text.tokenize_sentences("The Cat sat. It Left.") == [
      ["the", "cat", "sat", "."], ["it", "left", "."]]


def sentences():
  return [["a", "b", "a"], ["c", "a", "b"], ["d"]]


def test_vocab_keeps_most_frequent_plus_specials_and_unknown():
  v = text.Vocab.build(sentences(), size=5)   # 2 specials + 2 words + unknown
  assert v.words == [text.START, text.END, "a", "b", text.UNKNOWN]
  assert len(v) == 5 and v.unk_id == 4
  assert v.id("c") == v.unk_id and v.id("zzz") == v.unk_id
  assert list(v.encode(["a", "c", text.END])) == [2, 4, 1]


def test_vocab_round_trip_and_save_load(tmp_path):
  v = text.Vocab.build(sentences())
  toks = [text.START, "d", "a", "c", text.END]
  assert v.decode(v.encode(toks)) == toks
  v.save(str(tmp_path / "v.json"))
  w = text.Vocab.load(str(tmp_path / "v.json"))
  assert w.words == v.words and w.unk_id == v.unk_id


def test_unknown_token_in_text_maps_to_unknown_id():
  v = text.Vocab.build([["x", "<unk>", "<unk>"]], unk="<unk>", specials=("<eos>",))
  assert v.words == ["<eos>", "x", "<unk>"]
  assert list(v.encode(["<unk>", "y"])) == [v.unk_id, v.unk_id]


def test_vocab_rejects_too_small_size():
  with pytest.raises(ValueError, match="no room"):
    text.Vocab.build(sentences(), size=2)
