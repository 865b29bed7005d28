"""Client for the Lambda Extensions API: register, wait for events, report errors.

The register call is the first thing the extension does, before even importing ``json``: Lambda
starts the function's runtime only once every extension has registered, so the time until this
request is sent is added to every cold start.
"""

from __future__ import annotations

from . import client

API_VERSION = "2020-01-01"


class ExtensionsApiError(Exception):
    """Lambda refused a call; ``status`` and ``error_type`` come from its answer."""

    def __init__(self, call: str, status: int, body: bytes) -> None:
        self.call = call
        self.status = status
        self.error_type, self.error_message = _error_fields(body)
        super().__init__(
            f"{call} answered {status}: {self.error_type} {self.error_message}".strip()
        )


class Registration:
    """What Lambda told us when we registered; the body is parsed on first use, off the
    cold-start path (``json`` is not imported before the first ``/event/next``)."""

    __slots__ = ("extension_id", "_body", "_fields")

    def __init__(self, extension_id: str, body: bytes) -> None:
        self.extension_id = extension_id
        self._body = body
        self._fields: dict[str, object] | None = None

    def _get(self, name: str) -> str:
        if self._fields is None:
            self._fields = _json_object(self._body)
        return str(self._fields.get(name) or "")

    @property
    def function_name(self) -> str:
        return self._get("functionName")

    @property
    def function_version(self) -> str:
        return self._get("functionVersion")

    @property
    def account_id(self) -> str:
        return self._get("accountId")


class ExtensionsClient:
    """One extension's conversation with the Extensions API at ``runtime_api`` (host:port)."""

    def __init__(self, runtime_api: str, name: str) -> None:
        self.runtime_api = runtime_api
        self.name = name
        self.extension_id = ""

    def register(self, events: tuple[str, ...]) -> Registration:
        """Register for ``events`` and remember the identifier every later call must carry."""
        body = ('{"events":[' + ",".join(f'"{e}"' for e in events) + "]}").encode()
        response = client.request(
            self.runtime_api,
            "POST",
            f"/{API_VERSION}/extension/register",
            headers={
                "Lambda-Extension-Name": self.name,
                "Lambda-Extension-Accept-Feature": "accountId",
                "Content-Type": "application/json",
            },
            body=body,
            timeout=10.0,  # Lambda's whole init phase is 10 s
        )
        if response.status != 200:
            raise ExtensionsApiError("register", response.status, response.body)
        self.extension_id = response.headers.get("lambda-extension-identifier", "")
        if not self.extension_id:
            raise ExtensionsApiError("register", response.status, b"no Lambda-Extension-Identifier")
        return Registration(self.extension_id, response.body)

    def next_event(self) -> dict[str, object]:
        """Block until the next INVOKE or SHUTDOWN event (no client timeout, see ``client``)."""
        response = client.request(
            self.runtime_api,
            "GET",
            f"/{API_VERSION}/extension/event/next",
            headers={"Lambda-Extension-Identifier": self.extension_id},
        )
        if response.status != 200:
            raise ExtensionsApiError("event/next", response.status, response.body)
        # The emulator answers SHUTDOWN as text/plain: the body is JSON whatever the header says.
        return _json_object(response.body)

    def init_error(self, error_type: str, message: str) -> None:
        """Report a fatal init error: Lambda fails the function's init. Best effort."""
        self._report_error("init/error", error_type, message)

    def exit_error(self, error_type: str, message: str) -> None:
        """Report an error before exiting after init. Best effort."""
        self._report_error("exit/error", error_type, message)

    def _report_error(self, call: str, error_type: str, message: str) -> None:
        import json

        body = json.dumps({"errorMessage": message, "errorType": error_type, "stackTrace": []})
        try:
            client.request(
                self.runtime_api,
                "POST",
                f"/{API_VERSION}/extension/{call}",
                headers={
                    "Lambda-Extension-Identifier": self.extension_id,
                    "Lambda-Extension-Function-Error-Type": error_type,
                    "Content-Type": "application/json",
                },
                body=body.encode(),
                timeout=5.0,
            )
        except client.LocalHttpError:
            pass  # we are about to exit anyway; the log line already said why


def _json_object(body: bytes) -> dict[str, object]:
    import json

    try:
        value = json.loads(body or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _error_fields(body: bytes) -> tuple[str, str]:
    value = _json_object(body)
    if value:
        return str(value.get("errorType", "")), str(value.get("errorMessage", ""))
    return "", body[:200].decode("utf-8", "replace")
