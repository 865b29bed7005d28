"""lambda-logs-http: an AWS Lambda extension that forwards a function's logs to any HTTP endpoint.

The package needs nothing but the Python standard library (3.9+), because it runs inside the
function's own runtime, where no third-party package can be assumed.
"""

__version__ = "0.1.0"
