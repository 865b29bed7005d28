"""pytest fixtures for the real servers; a conftest imports the ones it wants by name.

``from tests.support.fixtures import fault_proxy, nginx_tls_receiver, tls_material  # noqa: F401``

They build on the ``receiver`` fixture (tests/conftest.py): a test that asks for ``receiver`` too
gets the very receiver behind the front server, to read what arrived or script its answers.
Each fixture skips, naming the package to install, when its program is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.faults import FaultProxy, find_mitmdump
from tests.support.nginx import Nginx, require_nginx
from tests.support.tls import TlsMaterial, make_tls_material, openssl_available
from tools.lambda_sandbox.receiver import Receiver

BASIC_AUTH = ("ingest", "s3cret-pass")
"""Credentials ``nginx_tls_receiver`` requires (throwaway: they guard a test process only)."""


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    """A CA, a server cert for 127.0.0.1/localhost signed by it, an unrelated CA; one per session."""
    if not openssl_available():
        pytest.skip("openssl is not installed (Debian: apt-get install openssl)")
    return make_tls_material(tmp_path_factory.mktemp("tls"))


def nginx_in_front_of(upstream_port: int, tls: TlsMaterial, tmp_path: Path) -> Nginx:
    """Real nginx (TLS, basic auth ``BASIC_AUTH``) proxying to ``upstream_port``; skips the test
    when nginx is not installed. Use it as a context manager."""
    require_nginx()
    return Nginx(upstream_port, tmp_path, tls=tls, basic_auth=BASIC_AUTH)


@pytest.fixture
def nginx_tls_receiver(
    receiver: Receiver, tls_material: TlsMaterial, tmp_path: Path
) -> Iterator[Nginx]:
    """The receiver behind real nginx: HTTPS (``.ca_file``), basic auth ``BASIC_AUTH``
    (``.authorization``), 413 over 1 MiB. Post to ``.url``."""
    with nginx_in_front_of(receiver.port, tls_material, tmp_path) as nginx:
        yield nginx


@pytest.fixture
def fault_proxy(receiver: Receiver, tmp_path: Path) -> Iterator[FaultProxy]:
    """The receiver behind mitmproxy with the fault addon; post to ``.url``, script with ``.set()``.

    Per test, so no script, down state or event leaks into the next one (~1 s to start and stop).
    """
    if find_mitmdump() is None:
        pytest.skip("mitmdump is not installed (pip install -r requirements-dev.txt: mitmproxy)")
    with FaultProxy(receiver.port, tmp_path) as proxy:
        yield proxy
