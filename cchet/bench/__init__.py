"""Benchmarks that report ratios against a baseline measured in the same process.

Each figure is the median of at least five samples taken after a warm-up, with baseline and candidate
samples interleaved so that drift in the machine's speed hits both alike. Results carry the machine,
core count, library versions and git SHA; ``bench/`` writes them to ``bench/results/*.json``.
"""
