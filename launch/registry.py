"""Experiments registered with ``launch/reproduce``.

Each entry names a module exposing ``reproduce(out_dir, quick) -> {'records',
'figures'}``. A new experiment adds one line here (see WORKSPACE.md).
"""
EXPERIMENTS = {
    "counting": "experiments.counting.reproduce",
    "long_range": "experiments.long_range.reproduce",
    "rnnlm": "experiments.rnnlm.reproduce",
    "seq2seq": "experiments.seq2seq.reproduce",
    "translation": "experiments.translation.reproduce",
    "varrnn": "experiments.varrnn.reproduce",
    "word2vec": "experiments.word2vec.reproduce",
}
