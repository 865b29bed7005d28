"""Real servers for integration tests: nginx (TLS + basic auth) and mitmproxy (fault injection).

Each sits in front of the capture receiver (``lambda_sandbox/receiver.py``), so what reached the endpoint is
always read from the receiver's record. Every server runs on 127.0.0.1, on a port of its own, is
owned by the test (or fixture) that started it and is stopped by PID in bounded time.
Fixtures are in ``tests.support.fixtures``.
"""
