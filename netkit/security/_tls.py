"""TLS contexts made right once: :func:`server_context`, :func:`client_context`, reload.

What "right" means here, for every context these functions build:

* TLS 1.2 is the floor; OpenSSL negotiates TLS 1.3 whenever the peer has it (it always
  prefers the highest common version), and TLS 1.3's suites are OpenSSL's defaults,
  all AEAD.
* TLS 1.2 suites are restricted to ECDHE key exchange with AES-GCM or ChaCha20-Poly1305:
  forward secrecy and authenticated encryption only (no CBC, no RSA key exchange).
* ALPN offers ``h2`` then ``http/1.1``; compression and renegotiation are off.
* Clients verify the server's certificate and hostname (SNI is sent by trio/Python for
  every DNS name; IP addresses have no SNI by the RFC, but are still checked against
  the certificate's IP SANs).

Certificates, keys and CAs are given as file paths or as PEM in memory (``bytes``, or a
``str`` that starts with ``-----BEGIN``). Python's :mod:`ssl` loads a certificate chain
only from files, so in-memory chains pass through a private temporary file (mode 0600,
removed at once).

Reload without restart: :class:`ReloadingServerContext` keeps one fixed front context
(what ``serve`` is given) whose SNI callback hands each new handshake the *current*
inner context. OpenSSL calls that callback for every ClientHello, with or without SNI,
and switches the connection to the inner context's certificate, key and CA store, so
:meth:`ReloadingServerContext.reload` (or its file watcher) changes what new connections
get while connections already open keep theirs. Whether a client certificate is
required is fixed at construction (OpenSSL takes the verify mode from the front).
"""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs
import trio

log = logging.getLogger("netkit.security")

PEMSource = str | bytes | os.PathLike[str]
"""A PEM file's path, or PEM text itself (``bytes``, or ``str`` starting ``-----BEGIN``)."""

#: ALPN protocols offered by both sides, most preferred first.
ALPN = ("h2", "http/1.1")
#: TLS 1.2 suites: ECDHE + AEAD only. TLS 1.3 suites are OpenSSL's (all AEAD).
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS"

_OPTIONS = ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION


def _file_path(source: PEMSource | None) -> str | None:
    """The file ``source`` names; None when it is PEM text itself (or None)."""
    if source is None or isinstance(source, bytes):
        return None
    if isinstance(source, str) and source.lstrip().startswith("-----BEGIN"):
        return None
    return os.fspath(source)


def _read_pem(source: PEMSource) -> bytes:
    if isinstance(source, bytes):
        return source
    path = _file_path(source)
    return Path(path).read_bytes() if path is not None else os.fspath(source).encode("ascii")


@contextlib.contextmanager
def _as_file(source: PEMSource) -> Iterator[str]:
    """A path holding ``source``: itself, or a private temporary copy of in-memory PEM."""
    path = _file_path(source)
    if path is not None:
        yield path
        return
    fd, temporary = tempfile.mkstemp(suffix=".pem")  # mkstemp creates it with mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(_read_pem(source))
        yield temporary
    finally:
        os.unlink(temporary)


def _harden(context: ssl.SSLContext, alpn: Sequence[str]) -> ssl.SSLContext:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= _OPTIONS
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


def _load_chain(
    context: ssl.SSLContext, cert: PEMSource, key: PEMSource | None, password: str | None
) -> None:
    with _as_file(cert) as cert_path:
        if key is None:
            context.load_cert_chain(cert_path, password=password)
            return
        with _as_file(key) as key_path:
            context.load_cert_chain(cert_path, key_path, password=password)


def _load_ca(context: ssl.SSLContext, ca: PEMSource) -> None:
    context.load_verify_locations(cadata=_read_pem(ca).decode("ascii"))


def server_context(
    cert: PEMSource,
    key: PEMSource | None = None,
    *,
    client_ca: PEMSource | None = None,
    require_client_cert: bool = True,
    password: str | None = None,
    alpn: Sequence[str] = ALPN,
) -> ssl.SSLContext:
    """A server context for ``serve(..., ssl_context=...)``.

    ``cert`` is the certificate chain (leaf first), ``key`` its private key (None when
    the key is in the ``cert`` PEM). With ``client_ca`` the server asks for client
    certificates and verifies them against that CA (mutual TLS): required by default,
    or merely verified when sent with ``require_client_cert=False`` (then
    authentication decides what an anonymous client may do).
    """
    context = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), alpn)
    _load_chain(context, cert, key, password)
    if client_ca is not None:
        _load_ca(context, client_ca)
        context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    return context


def client_context(
    ca: PEMSource | None = None,
    *,
    cert: PEMSource | None = None,
    key: PEMSource | None = None,
    password: str | None = None,
    alpn: Sequence[str] = ALPN,
) -> ssl.SSLContext:
    """A client context for ``RestClient(verify=...)``, ``open_channel(ssl_context=...)``
    and ``connect_events(ssl_context=...)``.

    ``ca``: the CA to trust (None: the system's trust store). ``cert``/``key``: a client
    certificate to present (mutual TLS). Hostname checking is on.
    """
    context = _harden(ssl.create_default_context(ssl.Purpose.SERVER_AUTH), alpn)
    if ca is not None:
        _load_ca(context, ca)
    if cert is not None:
        _load_chain(context, cert, key, password)
    return context


@attrs.frozen
class _Sources:
    cert: PEMSource
    key: PEMSource | None
    client_ca: PEMSource | None
    password: str | None

    def files(self) -> list[Path]:
        """The sources that are files (watched for changes)."""
        paths = map(_file_path, (self.cert, self.key, self.client_ca))
        return [Path(path) for path in paths if path is not None]


class ReloadingServerContext:
    """A server context whose certificate (and client CA) can change while serving.

    Pass :attr:`context` to ``serve``; call :meth:`reload` (after replacing the files,
    or with new in-memory PEM) or run :meth:`watch` in a nursery to reload when the files
    change. New connections get the new certificate; open connections keep theirs. A
    reload that fails (unreadable file, key not matching the certificate) raises and
    leaves the current certificate in place.
    """

    def __init__(
        self,
        cert: PEMSource,
        key: PEMSource | None = None,
        *,
        client_ca: PEMSource | None = None,
        require_client_cert: bool = True,
        password: str | None = None,
        alpn: Sequence[str] = ALPN,
    ) -> None:
        self._require = require_client_cert
        self._alpn = tuple(alpn)
        self._sources = _Sources(cert, key, client_ca, password)
        self._current = self._build(self._sources)
        #: Successful reloads so far.
        self.reloads = 0
        # The front context: what serve holds. Its own certificate is the first one
        # (used only if the SNI callback could not run); its verify settings are the
        # ones OpenSSL keeps for the connection, so they match the inner contexts'.
        self.context = self._build(self._sources)
        self.context.sni_callback = self._select

    def _build(self, sources: _Sources) -> ssl.SSLContext:
        return server_context(
            sources.cert,
            sources.key,
            client_ca=sources.client_ca,
            require_client_cert=self._require,
            password=sources.password,
            alpn=self._alpn,
        )

    def _select(self, connection: ssl.SSLObject, _name: str | None, _ctx: ssl.SSLContext) -> None:
        connection.context = self._current

    @property
    def current(self) -> ssl.SSLContext:
        """The context new handshakes use now."""
        return self._current

    def reload(
        self,
        cert: PEMSource | None = None,
        key: PEMSource | None = None,
        *,
        client_ca: PEMSource | None = None,
    ) -> None:
        """Load the certificate again (from the same sources, or from the ones given)."""
        sources = attrs.evolve(
            self._sources,
            cert=cert if cert is not None else self._sources.cert,
            key=key if key is not None else self._sources.key,
            client_ca=client_ca if client_ca is not None else self._sources.client_ca,
        )
        self._current = self._build(sources)  # raises before anything changes
        self._sources = sources
        self.reloads += 1

    def _stamp(self) -> tuple[tuple[int, int], ...]:
        stamps = []
        for path in self._sources.files():
            try:
                stat = path.stat()
            except OSError:
                stamps.append((-1, -1))
                continue
            stamps.append((stat.st_mtime_ns, stat.st_size))
        return tuple(stamps)

    async def watch(
        self,
        interval: float = 5.0,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Reload whenever a certificate, key or CA file changes (polled every ``interval``).

        A failed reload (e.g. the key was written before the certificate) is logged and
        retried at the next change; the previous certificate stays in use meanwhile.
        """
        seen = self._stamp()
        task_status.started()
        while True:
            await trio.sleep(interval)
            stamp = self._stamp()
            if stamp == seen:
                continue
            seen = stamp
            try:
                self.reload()
            except (OSError, ssl.SSLError, ValueError) as exc:
                log.warning("certificate reload failed, keeping the current one: %s", exc)
            else:
                log.info("certificate reloaded")
