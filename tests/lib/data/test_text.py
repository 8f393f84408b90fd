"""Tokenizing and sentence splitting (notes 001's preprocessing)."""
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


