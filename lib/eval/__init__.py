"""Evaluation: classification scores and calibration, greedy decoding of a
seq2seq model against references, sampling sentences from a language model,
word-vector neighbours and analogies. A new evaluator is a small class whose
``run(params)`` yields ``(name, value)`` pairs; it returns what it computed and
keeps nothing for later.
"""
