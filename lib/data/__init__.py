"""Data in, arrays out: step-indexed batch sources (exact resume), language-model
batching, the one vocabulary class, the tokenizer, corpus, pair-file and
word-vector readers, prepared TFDS datasets by index, and :class:`~lib.errors.DataError` (one line naming
``file:line`` and what was expected). A reader or batcher that two experiments
use, or that a researcher would import, goes here; one that serves a single
experiment lives in ``experiments/<name>/``.
"""
