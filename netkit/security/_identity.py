"""``PeerIdentity``: who the verified TLS client certificate says the peer is.

The server's TLS layer has already verified the chain against the configured client CA
before any request is read (``server_context(client_ca=...)``); what is left is to read
the names in the certificate. ``getpeercert()`` returns a parsed certificate only when it
was verified, so an identity here is always a verified one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs


@attrs.frozen
class PeerIdentity:
    """The subject and subject alternative names of a verified client certificate.

    ``subject``/``issuer`` map attribute names (``commonName``, ``organizationName``,
    ``organizationalUnitName``...) to their values (the last one when repeated).
    ``dns``, ``uris``, ``emails`` and ``ips`` are the SANs of each kind, in certificate
    order. ``serial`` is the serial number in hex; ``not_after`` is the expiry as the
    certificate states it.
    """

    subject: Mapping[str, str] = attrs.field(factory=dict)
    issuer: Mapping[str, str] = attrs.field(factory=dict)
    dns: tuple[str, ...] = ()
    uris: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    serial: str = ""
    not_after: str = ""

    @property
    def common_name(self) -> str | None:
        return self.subject.get("commonName")

    @property
    def name(self) -> str:
        """One name for the peer: the first URI SAN (a SPIFFE ID, say), DNS SAN, e-mail
        SAN, then the subject's common name; ``""`` when the certificate has none."""
        for names in (self.uris, self.dns, self.emails):
            if names:
                return names[0]
        return self.common_name or ""

    @classmethod
    def from_peercert(cls, cert: Mapping[str, Any]) -> PeerIdentity:
        """Build from ``ssl.SSLObject.getpeercert()``'s dictionary."""
        sans: dict[str, list[str]] = {"DNS": [], "URI": [], "email": [], "IP Address": []}
        for kind, value in cert.get("subjectAltName", ()):
            if kind in sans:
                sans[kind].append(str(value).strip())
        return cls(
            subject=_names(cert.get("subject", ())),
            issuer=_names(cert.get("issuer", ())),
            dns=tuple(sans["DNS"]),
            uris=tuple(sans["URI"]),
            emails=tuple(sans["email"]),
            ips=tuple(sans["IP Address"]),
            serial=str(cert.get("serialNumber", "")),
            not_after=str(cert.get("notAfter", "")),
        )


def _names(rdns: Any) -> dict[str, str]:
    names: dict[str, str] = {}
    for rdn in rdns:
        for attribute, value in rdn:
            names[str(attribute)] = str(value)
    return names


def peer_identity(source: Any) -> PeerIdentity | None:
    """The verified client identity of a stream, gRPC call, upgrade request or WebSocket.

    Accepts anything with ``peer_certificate`` (a method, as on ``HTTPStream`` and
    ``ServerCall``, or a value, as on ``UpgradeRequest``). None on cleartext, or when
    the client sent no certificate.
    """
    cert = getattr(source, "peer_certificate", None)
    if callable(cert):
        cert = cert()
    if not cert:
        return None
    return PeerIdentity.from_peercert(cert)
