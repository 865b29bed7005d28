"""Interoperability suite: the built layer, in the sandbox, against real receivers and proxies."""
