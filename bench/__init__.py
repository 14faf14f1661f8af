"""Benchmarks of coinharvest against the rate-limit lower bound and the seed's algorithm.

Run ``python -m bench <workload|all> [--scale F] [--out DIR]``; see ``bench/cli.py`` and
``docs/BENCHMARKS.md`` ("Scheduling against the limits"). Workloads live in
``bench/workloads/`` (one module each), the seed's algorithm in ``bench/baselines/``.
"""
