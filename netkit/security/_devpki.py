"""A throwaway certificate authority for development (``netkit up --tls``).

It makes a CA and one leaf certificate for ``localhost`` and ``127.0.0.1`` (usable
both as a server certificate and as a client certificate, so the same files serve
mutual TLS), writes them as PEM files into a directory, and builds the TLS contexts
from them. Never use it in production: the keys live in plain files, and anyone who
reads the directory can mint certificates the demo trusts.

It needs the ``cryptography`` package, which netkit does not require at run time (it
comes with ``netkit[jwt]``); without it, :func:`DevPKI.create` raises an ImportError
that says what to install.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from collections.abc import Sequence
from pathlib import Path

import attrs

from ._tls import ALPN, client_context, server_context

#: How long the throwaway certificates are valid.
VALIDITY = datetime.timedelta(days=7)

MISSING = (
    "netkit up --tls generates development certificates with the 'cryptography' "
    "package, which is not installed: pip install cryptography (or 'netkit[jwt]')"
)


@attrs.frozen
class DevPKI:
    """The files of a throwaway CA and a ``localhost``/``127.0.0.1`` certificate."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def create(cls, directory: str | os.PathLike[str]) -> DevPKI:
        """Generate a fresh CA and leaf into ``directory`` (created, mode 0700)."""
        try:
            from cryptography import x509
            from cryptography.hazmat.primitives import hashes, serialization
            from cryptography.hazmat.primitives.asymmetric import ec
            from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
        except ImportError as exc:
            raise ImportError(MISSING) from exc

        folder = Path(directory)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.UTC)
        start, end = now - datetime.timedelta(minutes=5), now + VALIDITY

        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "netkit development CA")])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name)
            .public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.IPAddress(ipaddress.ip_address("::1")),
                    ]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        pki = cls(folder / "ca.pem", folder / "localhost.pem", folder / "localhost.key")
        pem = serialization.Encoding.PEM
        pki.ca.write_bytes(ca_cert.public_bytes(pem))
        pki.cert.write_bytes(leaf.public_bytes(pem))
        key_bytes = leaf_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        fd = os.open(pki.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key_bytes)
        return pki

    def server_context(self, *, client_ca: bool = False) -> ssl.SSLContext:
        """Serving with the leaf; ``client_ca``: also ask for (and verify) client certs."""
        return server_context(self.cert, self.key, client_ca=self.ca if client_ca else None)

    def client_context(self, alpn: Sequence[str] = ALPN) -> ssl.SSLContext:
        """Trusting the CA and presenting the leaf (for servers that ask for one)."""
        return client_context(self.ca, cert=self.cert, key=self.key, alpn=alpn)
