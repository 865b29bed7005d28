"""Tenant isolation: the runtime is told the tenant, and the platform events name it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.lambda_sandbox import FunctionSpec

pytestmark = pytest.mark.timeout(30)

APP = '''
import logging

def handler(event, context):
    logging.getLogger().warning("for the tenant")
    return {"tenant_id": context.tenant_id}
'''


def test_the_tenant_reaches_the_runtime_the_platform_events_and_json_logs(
    sandbox_factory, tmp_path: Path
):  # type: ignore[no-untyped-def]
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(APP)
    sb = sandbox_factory(None, FunctionSpec(handler="app.handler", code_dir=code),
                         log_format="JSON", tenant_id="tenant-7")
    result = sb.invoke()
    assert result.status == "success" and result.response == {"tenant_id": "tenant-7"}
    assert result.report["tenantId"] == "tenant-7"
    events = {e["type"]: e["record"] for e in sb.telemetry_events}
    assert events["platform.start"]["tenantId"] == "tenant-7"
    assert "tenantId" not in events["platform.runtimeDone"]  # start and report only
    [logged] = [e["record"] for e in sb.telemetry_events
                if e["type"] == "function" and isinstance(e["record"], dict)]
    assert logged["message"] == "for the tenant" and logged["tenantId"] == "tenant-7"


def test_no_tenant_without_tenant_isolation(sandbox_factory):  # type: ignore[no-untyped-def]
    sb = sandbox_factory()
    result = sb.invoke()
    assert "tenantId" not in result.report
    assert all("tenantId" not in e["record"] for e in sb.telemetry_events
               if e["type"] in ("platform.start", "platform.report"))


def test_a_tenant_id_is_1_to_256_characters() -> None:
    from tools.lambda_sandbox import Sandbox

    with pytest.raises(ValueError, match="tenant_id"):
        Sandbox(tenant_id="")
