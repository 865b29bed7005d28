"""Optional gzip of request bodies (``HTTP_COMPRESSION=gzip``).

``zlib`` with a gzip wrapper (wbits 31) rather than the ``gzip`` module: same bytes on the wire,
a lighter import, and it is imported only when compression is on.
"""

from __future__ import annotations


def gzip_bytes(data: bytes, level: int) -> bytes:
    """``data`` as one gzip member (RFC 1952), at ``level`` 1 (fastest) to 9 (smallest)."""
    import zlib

    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()
