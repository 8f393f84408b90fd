"""Losses as sums and counts: the fused softmax NLL of a large output layer
(:mod:`~lib.losses.softmax`), NCE and negative sampling
(:mod:`~lib.losses.sampled`) and the candidate samplers they draw from
(:mod:`~lib.losses.samplers`). A new loss over model outputs goes here.
"""
