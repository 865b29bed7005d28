"""The example function the deployments in examples/ attach the layer to: it only logs."""

import logging

logger = logging.getLogger()
logger.setLevel(logging.INFO)


def handler(event, context):
    print(f"hello from {context.function_name}")
    logger.info("event keys: %s", sorted(event) if isinstance(event, dict) else type(event))
    return {"ok": True}
