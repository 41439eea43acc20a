"""Benchmarks of the hub, each against a baseline measured in the same run.

``python -m ops.bench all [--size smoke|full] [--json]`` runs every benchmark;
``python -m ops.bench ingest|authorize|fanout|fanload|leases|ingestfwd|...`` runs some.
Each starts what it needs (a fresh schema, ``hub migrate``, ``hub web`` under
gunicorn and ``hub worker`` as processes, partner servers from
``tests/partner.py``), prints a table (figure, hub, baseline, ratio, goal,
met?) and cleans up its processes and its schema. Timing goals are reported,
never asserted: the exit status is non-zero only when a benchmark crashes.
"""
