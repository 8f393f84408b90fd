"""Sweeps: trial definitions (:mod:`~lib.sweeps.space`: grid, zip, random
draws applied to a locked config) and many trials of one experiment trained
together in one jitted ``vmap`` (:mod:`~lib.sweeps.trial_batch`).
``launch/sweep.py`` runs them locally, vmapped or on Ray.
"""
