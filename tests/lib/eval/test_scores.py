import numpy as np
import pytest

from lib.eval import scores


def test_macro_f1_on_a_hand_made_confusion():
  # class 0: 3 true, 2 found, 1 false alarm; class 1: 2 true, 1 found; class 2: 1 true, 0 found.
  y_true = [0, 0, 0, 1, 1, 2]
  y_pred = [0, 0, 1, 1, 0, 1]
  cm = scores.confusion(y_true, y_pred, 3)
  np.testing.assert_array_equal(cm, [[2, 1, 0], [1, 1, 0], [0, 1, 0]])
  # F1 = 2tp / (2tp + fp + fn): class 0: 4/6, class 1: 2/5, class 2: 0/1.
  assert scores.macro_f1(y_true, y_pred, 3) == pytest.approx((4 / 6 + 2 / 5 + 0.0) / 3)


def test_macro_f1_leaves_out_classes_nobody_mentions():
  # Class 2 is neither true nor predicted: scikit-learn averages over classes 0 and 1 only.
  assert scores.macro_f1([0, 1, 1], [0, 1, 0], 3) == pytest.approx((2 / 3 + 2 / 3) / 2)
  assert scores.macro_f1([0, 1], [0, 1], 5) == 1.0


def test_balanced_draws_take_the_smallest_class_size_of_every_class():
  y = np.asarray([0] * 10 + [1] * 3 + [2] * 7 + [4] * 5)  # class 3 absent
  draws = scores.balanced_draws(y, 5, num_draws=10, seed=0)
  assert len(draws) == 10
  for idx in draws:
    assert len(set(idx.tolist())) == len(idx) == 4 * 3
    np.testing.assert_array_equal(np.bincount(y[idx], minlength=5), [3, 3, 3, 0, 3])
  assert any(not np.array_equal(np.sort(draws[0]), np.sort(d)) for d in draws[1:])
  again = scores.balanced_draws(y, 5, num_draws=10, seed=0)
  assert all(np.array_equal(a, b) for a, b in zip(draws, again))


def test_balanced_f1_of_a_majority_guesser_on_imbalanced_labels():
  # Always predicting class 0 is 90% accurate on the raw labels, but on balanced draws of
  # 2 classes its macro-F1 is (2/3 + 0) / 2 = 1/3 in every draw.
  y = np.asarray([0] * 90 + [1] * 10)
  pred = np.zeros_like(y)
  draws = scores.balanced_draws(y, 2, num_draws=5, seed=1)
  mean, std = scores.balanced_f1(y, pred, draws, 2)
  assert mean == pytest.approx(1 / 3) and std == pytest.approx(0.0)
  assert scores.balanced_f1(y, y, draws, 2) == (1.0, 0.0)


def test_expected_calibration_error():
  y = np.asarray([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
  # Calibrated: confidence 0.6 and 60% right in the one bin used.
  calibrated = np.tile([0.4, 0.6], (10, 1))
  assert scores.expected_calibration_error(calibrated, y) == pytest.approx(0.0, abs=1e-12)
  # Overconfident: confidence 0.95, 60% right -> ECE 0.35.
  over = np.tile([0.05, 0.95], (10, 1))
  assert scores.expected_calibration_error(over, y) == pytest.approx(0.35)
  # Two bins: 5 at 0.95 all right (gap .05), 5 at 0.55 on the wrong class... (gap .55).
  mixed = np.vstack([np.tile([0.05, 0.95], (5, 1)), np.tile([0.55, 0.45], (5, 1))])
  y2 = np.asarray([1] * 5 + [1] * 5)
  assert scores.expected_calibration_error(mixed, y2) == pytest.approx(0.5 * 0.05 + 0.5 * 0.55)
  assert scores.nll(calibrated, y) == pytest.approx(-(4 * np.log(0.4) + 6 * np.log(0.6)) / 10)


def test_reliability_bins_are_what_ece_sums():
  mixed = np.vstack([np.tile([0.05, 0.95], (5, 1)), np.tile([0.55, 0.45], (5, 1))])
  y = np.asarray([1] * 5 + [1] * 5)
  conf, acc, n = scores.reliability(mixed, y, num_bins=10)
  assert n.tolist() == [0] * 5 + [5] + [0] * 3 + [5]
  assert conf[5] == pytest.approx(0.55) and acc[5] == 0.0
  assert conf[9] == pytest.approx(0.95) and acc[9] == 1.0
  assert np.isnan(conf[0]) and np.isnan(acc[0])
  ece = np.nansum(n / n.sum() * np.abs(acc - conf))
  assert ece == pytest.approx(scores.expected_calibration_error(mixed, y, 10))
