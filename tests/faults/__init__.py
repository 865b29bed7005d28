"""The fault matrix: the built layer, frozen between invocations, against receivers that fail.

Each scenario runs the real layer in ``lambda_sandbox`` (freeze on) against the capture
receiver behind nginx (TLS + basic auth) and/or the mitmproxy fault layer, counts the function's
own marker lines at the receiver (expected, delivered, lost, duplicated), measures the time each
invocation was held after the function's response (``post_runtime_extensions_ms``), and appends
its figures to ``$FAULT_MATRIX_OUT/results.jsonl``; ``report.py`` turns that into a table.
"""
