"""Interop fixtures: the peer programs and TLS contexts and files from the shared ``ca``."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from tests.interop.peers import tool


@pytest.fixture
def curl() -> str:
    return tool("curl")


@pytest.fixture
def nghttp() -> str:
    return tool("nghttp")


@pytest.fixture
def h2load() -> str:
    return tool("h2load")


@pytest.fixture
def server_ssl_context(ca: trustme.CA) -> ssl.SSLContext:
    """A fresh server context with a certificate for 127.0.0.1 and localhost.

    Fresh per test: ``serve`` sets ALPN on the context it is given.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def client_ssl_context(ca: trustme.CA) -> ssl.SSLContext:
    """A client context that trusts only the test CA (fresh: httpx sets ALPN on it)."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    """The test CA's certificate as a PEM file, for ``curl --cacert``."""
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path
