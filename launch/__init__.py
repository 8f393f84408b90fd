"""Launchers: ``reproduce`` (every experiment's quick preset), ``bench`` (benchmarks)."""
