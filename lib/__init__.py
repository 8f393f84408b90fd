"""rnnlab's library: recurrence core, shared trainer and utilities.

Everything here is a pure function of explicit inputs (parameters, PRNG keys,
configs): import the pieces into your own research code without the trainer.
"""
