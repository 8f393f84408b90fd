"""rnnlab's library: recurrent networks as pure functions, and one trainer.

Subpackages by concern (importing any of them changes no global state):

* :mod:`lib.nn`: cells, recurrence, attention, initializers and the reusable
  models (language-model stacks, seq2seq, variational layers, skip-gram).
* :mod:`lib.losses`: softmax NLL, NCE and negative sampling, their samplers.
* :mod:`lib.data`: step-indexed batching, the vocabulary, tokenizing, corpus
  and pair-file readers, :class:`lib.errors.DataError`.
* :mod:`lib.eval`: scores, decoding, sampling, word-vector evaluation.
* :mod:`lib.train`: the experiment contract, train state and step, the loop,
  optimizers, checkpoints, metrics and durations.
* :mod:`lib.runtime`: entry points, logging, host memory, devices, writers,
  plots and progress lines.
* :mod:`lib.sweeps`: sweep definitions and vmapped trial batches.
"""
