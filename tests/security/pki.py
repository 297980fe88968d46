"""Throwaway PKI for the security tests: a trustme CA, server and client certificates."""

from __future__ import annotations

import datetime
from pathlib import Path

import attrs
import trustme


@attrs.frozen
class Files:
    """One certificate as PEM files (for curl, grpcio and file-based contexts)."""

    cert: Path
    key: Path


def write(cert: trustme.LeafCert, directory: Path, name: str) -> Files:
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    with cert_path.open("wb") as handle:
        for blob in cert.cert_chain_pems:
            handle.write(blob.bytes())
    cert.private_key_pem.write_to_path(str(key_path))
    return Files(cert_path, key_path)


def server_cert(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert("127.0.0.1", "localhost")


def client_cert(ca: trustme.CA, name: str = "billing.netkit.test") -> trustme.LeafCert:
    """A client certificate whose DNS SAN names the workload (trustme has no URI SANs)."""
    return ca.issue_cert(name, common_name="billing")


def expired_client_cert(ca: trustme.CA) -> trustme.LeafCert:
    now = datetime.datetime.now(datetime.UTC)
    return ca.issue_cert(
        "old.netkit.test",
        not_before=now - datetime.timedelta(days=10),
        not_after=now - datetime.timedelta(days=1),
    )


def ca_file(ca: trustme.CA, directory: Path, name: str = "ca") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.pem"
    ca.cert_pem.write_to_path(str(path))
    return path
