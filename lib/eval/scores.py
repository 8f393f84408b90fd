"""Classification scores on the host (numpy): confusion, macro-F1, balanced draws, calibration.

Macro-F1 follows scikit-learn's ``f1_score(average='macro')`` (notes 000): the
unweighted mean of per-class F1 over the classes present in the labels or the
predictions; a class with no true and no predicted example is left out, and a
class with ``tp + fp + fn > 0`` but ``tp = 0`` scores 0.
"""
from __future__ import annotations

from typing import Optional

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
  """``C[i, j]``: examples of class ``i`` predicted as ``j``."""
  y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
  return np.bincount(y_true * num_classes + y_pred,
                     minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_f1(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """``(f1_C, present_C)``; ``present`` marks classes seen in labels or predictions."""
  tp = np.diag(cm).astype(np.float64)
  fp = cm.sum(axis=0) - tp
  fn = cm.sum(axis=1) - tp
  denom = 2 * tp + fp + fn
  f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
  return f1, denom > 0


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
  f1, present = per_class_f1(confusion(y_true, y_pred, num_classes))
  return float(f1[present].mean()) if present.any() else 0.0


def balanced_draws(y: np.ndarray, num_classes: int, num_draws: int, seed: int
                   ) -> list[np.ndarray]:
  """Notes 000's evaluation sets: each draw takes ``min_c |class c|`` examples of every
  class, without replacement within the draw. Classes absent from ``y`` are left out
  (the notes' code would draw zero of every class)."""
  y = np.asarray(y)
  by_class = [np.flatnonzero(y == c) for c in range(num_classes)]
  by_class = [idx for idx in by_class if len(idx)]
  per = min(len(idx) for idx in by_class)
  rng = np.random.default_rng(seed)
  return [np.concatenate([rng.choice(idx, per, replace=False) for idx in by_class])
          for _ in range(num_draws)]


def balanced_f1(y: np.ndarray, pred: np.ndarray, draws: list[np.ndarray], num_classes: int
                ) -> tuple[float, float]:
  """Mean and standard deviation of macro-F1 over the draws (notes' ``my_eval``)."""
  scores = [macro_f1(y[idx], pred[idx], num_classes) for idx in draws]
  return float(np.mean(scores)), float(np.std(scores))


def expected_calibration_error(probs_NxC: np.ndarray, y: np.ndarray, num_bins: int = 15
                               ) -> float:
  """ECE (Guo et al. 2017): ``sum_b n_b / N * |accuracy_b - confidence_b|`` over
  equal-width bins of the top-class probability."""
  probs_NxC = np.asarray(probs_NxC, np.float64)
  conf = probs_NxC.max(axis=1)
  correct = (probs_NxC.argmax(axis=1) == np.asarray(y)).astype(np.float64)
  bins = np.minimum((conf * num_bins).astype(np.int64), num_bins - 1)
  gap = np.abs(np.bincount(bins, correct, num_bins) - np.bincount(bins, conf, num_bins))
  return float(gap.sum() / max(len(conf), 1))


def reliability(probs_NxC: np.ndarray, y: np.ndarray, num_bins: int = 15
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The reliability diagram's bins (those :func:`expected_calibration_error` sums over):
  ``(mean confidence, accuracy, count)`` per equal-width bin of the top-class
  probability; empty bins are ``nan`` with count 0."""
  probs_NxC = np.asarray(probs_NxC, np.float64)
  conf = probs_NxC.max(axis=1)
  correct = (probs_NxC.argmax(axis=1) == np.asarray(y)).astype(np.float64)
  bins = np.minimum((conf * num_bins).astype(np.int64), num_bins - 1)
  n = np.bincount(bins, minlength=num_bins).astype(np.float64)
  with np.errstate(invalid="ignore", divide="ignore"):
    return (np.bincount(bins, conf, num_bins) / n, np.bincount(bins, correct, num_bins) / n,
            n.astype(np.int64))


def nll(probs_NxC: np.ndarray, y: np.ndarray, floor: Optional[float] = 1e-12) -> float:
  """Mean negative log-likelihood of the labels."""
  p = np.asarray(probs_NxC, np.float64)[np.arange(len(y)), np.asarray(y)]
  return float(-np.log(np.maximum(p, floor)).mean())
