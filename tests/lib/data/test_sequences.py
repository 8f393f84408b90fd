"""Sentence batches (padding, masks) and PTB-style stream windows."""
import numpy as np
import pytest

from lib.data import sequences


def test_stream_windows_continue_each_row():
  ids = np.arange(103)
  w = sequences.stream_windows(ids, batch_size=4, num_steps=5)
  assert w["x"].shape == (4, 4, 5)                # rows of 25 tokens: (25 - 1) // 5 windows
  rows = sequences.stream_rows(ids, 4)
  # Concatenating row b's windows gives row b of the stream; y is x shifted by one.
  for b in range(4):
    np.testing.assert_array_equal(np.concatenate(w["x"][:, b]), rows[b, :20])
    np.testing.assert_array_equal(np.concatenate(w["y"][:, b]), rows[b, 1:21])


def test_stream_batches_reset_at_epoch_start():
  src = sequences.StreamBatches(np.arange(200), 2, 10)
  n = src.steps_per_epoch
  assert bool(src(0)["reset"]) and not bool(src(1)["reset"]) and bool(src(n)["reset"])
  np.testing.assert_array_equal(src(n + 1)["x"], src(1)["x"])


def test_sentence_batches_pad_to_bucket_with_mask():
  seqs = [np.array([0, 5, 6, 1]), np.array([0, 7, 1]), np.array([0, 8, 9, 10, 11, 12, 13, 14, 15, 16, 1])]
  src = sequences.SentenceBatches(seqs, 3, seed=0, max_len=64, pad_multiple=8)
  b = src(0)
  assert b["x"].shape == (3, 16)                  # longest input 10 -> bucket 16
  assert b["mask"].sum() == 3 + 2 + 10            # real targets only
  for x, y, m in zip(b["x"], b["y"], b["mask"]):
    n = int(m.sum())
    np.testing.assert_array_equal(x[1:n], y[:n - 1])  # targets are inputs shifted


def test_sentence_batches_cut_long_sentences_and_check_batch_size():
  src = sequences.SentenceBatches([np.arange(100)], 1, seed=0, max_len=16)
  assert src(0)["x"].shape == (1, 16)
  with pytest.raises(ValueError, match="batch_size"):
    sequences.SentenceBatches([np.arange(5)], 2, seed=0)
