"""A sample Lambda function for the sandbox demo: it logs in every way a Python function does.

Event keys (all optional):
  ``{"lines": N}``   print N numbered lines
  ``{"sleep": s}``   sleep s seconds (longer than the timeout → a timeout)
  ``{"crash": true}`` ``os._exit(1)``: the runtime process dies (Runtime.ExitError)
  ``{"raise": true}`` raise an exception (an unhandled function error)
"""

import json
import logging
import os
import time

logger = logging.getLogger()
# Lambda's Python runtime leaves the root logger at WARNING unless an application log level is
# configured (AWS_LAMBDA_LOG_LEVEL, JSON format only); show everything in the demo otherwise.
if "AWS_LAMBDA_LOG_LEVEL" not in os.environ:
    logger.setLevel(logging.DEBUG)

print("sample function: module loaded (init phase)")


def handler(event, context):
    event = event if isinstance(event, dict) else {}
    print(f"handling request {context.aws_request_id}")
    logger.debug("a debug message")
    logger.info("an info message")
    logger.warning("a warning message")
    logger.error("an error message")
    print(json.dumps({"level": "INFO", "message": "a JSON-looking line", "n": 1}))
    try:
        {}["missing"]
    except KeyError:
        logger.exception("an exception with its traceback")

    for i in range(int(event.get("lines", 0))):
        print(f"line {i + 1}")
    if event.get("sleep"):
        time.sleep(float(event["sleep"]))
    if event.get("crash"):
        os._exit(1)
    if event.get("raise"):
        raise RuntimeError("the sample function was asked to raise")
    return {"ok": True, "requestId": context.aws_request_id,
            "remainingMs": context.get_remaining_time_in_millis()}
