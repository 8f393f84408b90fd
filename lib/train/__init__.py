"""Training: the experiment contract (:class:`~lib.train.task.Task`,
:class:`~lib.train.task.Built`), the train state and pure step, the loop core
every run shares (:class:`lib.train.loop.Loop`: a single run,
:func:`lib.train.trainer.fit`, is a trial axis of one), optax optimizers
from config, orbax checkpoints, metric sums and counts, summaries, and the one
rule that turns ``*_epochs`` / ``*_examples`` into steps
(:mod:`~lib.runtime.durations`).
"""
