"""Notes 001's numpy RNN LM, transcribed (Python 3): the benchmark's baseline and
the tests' reference for truncated BPTT.

Loops over time steps and truncation steps exactly as the notes' ``RNNNumpy``
do; only ``print`` statements and Python 2 idioms changed. Do not optimise it:
it is what rnnlab is measured against.
"""
from __future__ import annotations

import numpy as np


def softmax(x):
  e = np.exp(x - np.max(x))
  return e / np.sum(e)


class RNNNumpy:

  def __init__(self, word_dim: int, hidden_dim: int = 100, bptt_truncate: int = 4, seed=None):
    rng = np.random if seed is None else np.random.RandomState(seed)
    self.word_dim, self.hidden_dim, self.bptt_truncate = word_dim, hidden_dim, bptt_truncate
    self.U = rng.uniform(-np.sqrt(1. / word_dim), np.sqrt(1. / word_dim), (hidden_dim, word_dim))
    self.V = rng.uniform(-np.sqrt(1. / hidden_dim), np.sqrt(1. / hidden_dim), (word_dim, hidden_dim))
    self.W = rng.uniform(-np.sqrt(1. / hidden_dim), np.sqrt(1. / hidden_dim), (hidden_dim, hidden_dim))

  def forward_propagation(self, x):
    T = len(x)
    s = np.zeros((T + 1, self.hidden_dim))
    s[-1] = np.zeros(self.hidden_dim)
    o = np.zeros((T, self.word_dim))
    for t in np.arange(T):
      s[t] = np.tanh(self.U[:, x[t]] + self.W.dot(s[t - 1]))
      o[t] = softmax(self.V.dot(s[t]))
    return [o, s]

  def calculate_total_loss(self, x, y):
    L = 0
    for i in np.arange(len(y)):
      o, s = self.forward_propagation(x[i])
      correct_word_predictions = o[np.arange(len(y[i])), y[i]]
      L += -1 * np.sum(np.log(correct_word_predictions))
    return L

  def calculate_loss(self, x, y):
    N = np.sum([len(y_i) for y_i in y])
    return self.calculate_total_loss(x, y) / N

  def bptt(self, x, y):
    T = len(y)
    o, s = self.forward_propagation(x)
    dLdU = np.zeros(self.U.shape)
    dLdV = np.zeros(self.V.shape)
    dLdW = np.zeros(self.W.shape)
    delta_o = o
    delta_o[np.arange(len(y)), y] -= 1.
    for t in np.arange(T)[::-1]:
      dLdV += np.outer(delta_o[t], s[t].T)
      delta_t = self.V.T.dot(delta_o[t]) * (1 - (s[t] ** 2))
      for bptt_step in np.arange(max(0, t - self.bptt_truncate), t + 1)[::-1]:
        dLdW += np.outer(delta_t, s[bptt_step - 1])
        dLdU[:, x[bptt_step]] += delta_t
        delta_t = self.W.T.dot(delta_t) * (1 - s[bptt_step - 1] ** 2)
    return [dLdU, dLdV, dLdW]

  def sgd_step(self, x, y, learning_rate):
    dLdU, dLdV, dLdW = self.bptt(x, y)
    self.U -= learning_rate * dLdU
    self.V -= learning_rate * dLdV
    self.W -= learning_rate * dLdW

  # rnnlab's layout of the same numbers (lib.nn.lm.RecurrentLM with config.NOTES_LM).
  def as_params(self) -> dict:
    return {"embed": self.U.T.copy(), "layers": [{"w_rec": self.W.T.copy()}],
            "out": {"w": self.V.T.copy()}}
