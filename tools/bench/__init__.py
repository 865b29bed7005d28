"""Benchmarks of lambda-logs-http: ``python -m tools.bench.bench``, ``make bench``.

Nothing here is imported by the extension or its tests' assertions: the bench drives the *built
layer* from the outside (subprocesses, the local sandbox, real receivers) and only reports.
"""
