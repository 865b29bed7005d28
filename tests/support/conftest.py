"""The real-server fixtures, for the tests of the servers themselves."""

from tests.support.fixtures import fault_proxy, nginx_tls_receiver, tls_material  # noqa: F401
