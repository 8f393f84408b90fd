"""What runs around training: absl entry points with clear config errors
(:mod:`~lib.runtime.cli`), rnnlab's logging set-up, host-memory settings, config
openings, device meshes and multi-host start-up (:mod:`~lib.runtime.parallel`),
metric writers (JSON lines, TensorBoard), PNG plots and progress lines. Entry
points call what changes process state; importing changes nothing.
"""
