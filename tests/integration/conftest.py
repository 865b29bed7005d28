"""Real servers for the integration tests (fixtures from tests/support)."""

from tests.support.fixtures import tls_material  # noqa: F401
