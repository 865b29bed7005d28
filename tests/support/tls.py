"""Throwaway TLS material made with the ``openssl`` command: a CA, a server cert it signs, another CA.

The server certificate names ``127.0.0.1`` (IP SAN) and ``localhost`` (DNS SAN), so clients can
verify it the same way they verify a real endpoint, hostname check included. The unrelated second
CA is for "wrong CA" tests: a client trusting only it must fail verification.

The extensions and key usages are those that Python 3.13's default context demands
(``VERIFY_X509_STRICT``: key usage on the CA, authority and subject key identifiers), so the
same files work on every Lambda Python (3.9-3.13). Keys are EC P-256: generated in milliseconds,
where RSA keys would cost a noticeable share of a test session.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

OPENSSL_TIMEOUT = 30.0
"""Seconds any one ``openssl`` command may take before the session gives up."""

VALID_DAYS = 2
"""The material lives for one test session; two days covers a session across midnight."""

_SERVER_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1{dns_names}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""

_CA_EXTENSIONS = [
    "-addext", "basicConstraints=critical,CA:TRUE",
    "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    "-addext", "subjectKeyIdentifier=hash",
]

_EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]


@dataclass(frozen=True)
class TlsMaterial:
    """Paths of the PEM files, all in ``directory``; private keys are unencrypted."""

    directory: Path
    ca_file: Path
    """The CA that signed ``cert_file``: what a client must trust."""
    ca_key: Path
    cert_file: Path
    """Server certificate for 127.0.0.1 and localhost."""
    key_file: Path
    other_ca_file: Path
    """A CA unrelated to ``cert_file``: a client trusting only this one must fail to verify."""

    def client_context(self, ca_file: Path | None = None) -> ssl.SSLContext:
        """A verifying client context (hostname check on) trusting ``ca_file``, default ``ca_file``."""
        return ssl.create_default_context(cafile=str(ca_file or self.ca_file))


def openssl_available() -> bool:
    """Whether the ``openssl`` command is on PATH (Debian: package ``openssl``)."""
    return shutil.which("openssl") is not None


def make_tls_material(directory: Path, dns_names: tuple[str, ...] = ("localhost",)) -> TlsMaterial:
    """Create ``directory`` and generate the CA, server cert and other CA in it. The server
    certificate names 127.0.0.1 and ``dns_names``.

    Raises ``RuntimeError`` with openssl's output when a command fails.
    """
    directory.mkdir(parents=True, exist_ok=True)
    material = TlsMaterial(
        directory=directory,
        ca_file=directory / "ca.pem",
        ca_key=directory / "ca.key",
        cert_file=directory / "server.pem",
        key_file=directory / "server.key",
        other_ca_file=directory / "other-ca.pem",
    )
    _make_ca(material.ca_file, material.ca_key, "lambda-logs-http test CA")
    _make_ca(material.other_ca_file, directory / "other-ca.key", "unrelated test CA")
    csr = directory / "server.csr"
    _openssl("req", "-new", *_EC_KEY, "-nodes", "-keyout", str(material.key_file),
             "-out", str(csr), "-subj", "/CN=127.0.0.1")
    extensions = directory / "server.ext"
    names = "".join(f", DNS:{name}" for name in dns_names)
    extensions.write_text(_SERVER_EXTENSIONS.format(dns_names=names), encoding="ascii")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(material.ca_file),
             "-CAkey", str(material.ca_key), "-set_serial", "2", "-days", str(VALID_DAYS),
             "-sha256", "-extfile", str(extensions), "-out", str(material.cert_file))
    return material


def _make_ca(cert: Path, key: Path, name: str) -> None:
    _openssl("req", "-x509", *_EC_KEY, "-nodes", "-keyout", str(key), "-out", str(cert),
             "-days", str(VALID_DAYS), "-sha256", "-subj", f"/CN={name}", *_CA_EXTENSIONS)


def _openssl(*args: str) -> None:
    result = subprocess.run(["openssl", *args], capture_output=True, text=True,
                            timeout=OPENSSL_TIMEOUT)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed ({result.returncode}): "
                           f"{result.stderr.strip() or result.stdout.strip()}")
