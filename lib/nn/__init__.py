"""Models as pure functions of a parameter pytree.

A new cell, recurrence, attention form, initializer or reusable model goes
here: recurrent cells by name (:mod:`~lib.nn.cells`: classic dense cells and linear
recurrences under one contract), unrolled (:mod:`~lib.nn.recurrence`) by the scan
algorithms of :mod:`~lib.nn.scans`, stacked in layers (:mod:`~lib.nn.stacks`: layer by
layer, as a wavefront, or through cuDNN, :mod:`~lib.nn.cudnn`), attention over a masked memory, the language-model
stacks (:mod:`~lib.nn.lm`), the seq2seq encoder-decoder, variational layers over
any parameter pytree, the skip-gram model, and finite-difference gradient
checks; and the same cells as Flax Linen / NNX modules, with parameter converters and the
variational modes over Flax models. Nothing here knows about the trainer, files or configs.
"""
