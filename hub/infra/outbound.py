"""Where the hub may send a request: the outbound guard (issue 13, item 1).

Every URL the hub calls comes from a partner (its versions URL, the endpoints
in its version details, a command's ``response_url``, a ``Link`` header), so a
partner could point the hub at the hub's own network. The guard allows only
public unicast addresses; refused are loopback, RFC 1918 and unique-local
(fc00::/7), link-local (169.254.0.0/16 with the cloud metadata address, fe80::/10),
shared address space (CGNAT, 100.64.0.0/10), multicast, unspecified and the
reserved and documentation ranges. An IPv6 address carrying an IPv4 one
(``::ffff:127.0.0.1``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``) is judged by
the IPv4 address inside.

``HUB_PARTNER_NETWORKS_ALLOWED`` (comma-separated CIDR ranges, default none)
lists ranges allowed anyway: a local sandbox or the test suite sets
``127.0.0.0/8,::1/128``.

The check is made on the address actually connected to: the client
(:mod:`hub.infra.client`) resolves a host once, checks every address and
connects to a checked one, so a name that resolves to a public address for
one lookup and to a private one for the next (DNS rebinding) gains nothing.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SANDBOX_NETWORKS = "127.0.0.0/8,::1/128"
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_BENCHMARK = ipaddress.ip_network("198.18.0.0/15")


class OutboundRefused(Exception):
    """A URL the hub must not call (its message names the URL and why; ``reason``: the why)."""

    def __init__(self, target: str, reason: str) -> None:
        super().__init__(f"{target}: {reason}")
        self.reason = reason


GUARD_HINT = "(HUB_PARTNER_NETWORKS_ALLOWED lists ranges allowed anyway)"


def parse_networks(text: str | None) -> tuple[IPNetwork, ...]:
    """``"127.0.0.0/8, ::1/128"`` as networks; ``ValueError`` naming the entry that is no CIDR range."""
    networks = []
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(item) from None
    return tuple(networks)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_refusal(address: IPAddress) -> str | None:
    """Why ``address`` is no public unicast address (``None``: it is one)."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            reason = address_refusal(inner)
            return f"{reason} (IPv4 {inner} inside)" if reason else None
        if address.scope_id:
            return "link-local"
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("shared address space (CGNAT)", isinstance(address, ipaddress.IPv4Address) and address in _CGNAT),
        ("unique-local", isinstance(address, ipaddress.IPv6Address) and address in _UNIQUE_LOCAL),
        ("benchmarking", isinstance(address, ipaddress.IPv4Address) and address in _BENCHMARK),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("not globally routable", not address.is_global),
    )
    return next((name for name, hit in checks if hit), None)


@dataclass(frozen=True)
class OutboundGuard:
    """The guard of one process: the ranges allowed anyway, and the largest answer read."""

    allowed: tuple[IPNetwork, ...] = ()
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES

    def refusal(self, address: str | IPAddress) -> str | None:
        """Why the hub may not connect to ``address`` (``None``: it may)."""
        ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
        candidates = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        if any(c.version == n.version and c in n for c in candidates for n in self.allowed):
            return None
        reason = address_refusal(ip)
        if reason is None:
            return None
        return f"{ip} is {reason}"

    def resolve(self, host: str, port: int, url: str | None = None) -> list[tuple]:
        """``getaddrinfo`` of ``host``, every address checked: the (family, type, proto, sockaddr)
        to connect to. Raises :class:`OutboundRefused` if any address is refused (a name must
        resolve only to allowed addresses) and ``socket.gaierror`` if it does not resolve."""
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
        for _family, _type, _proto, _name, sockaddr in infos:
            reason = self.refusal(sockaddr[0])
            if reason:
                raise OutboundRefused(url or f"{host}:{port}", f"refused by the outbound guard, {reason} {GUARD_HINT}")
        return [(f, t, p, s) for f, t, p, _n, s in infos]

    def check_url(self, url: str) -> None:
        """Refuse ``url`` now if it is no http(s) URL or its host resolves to a refused address
        (a host that does not resolve passes: the call itself will find no answer)."""
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise OutboundRefused(url[:200], "not a valid URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OutboundRefused(url[:200], "not an absolute http or https URL")
        try:
            self.resolve(parts.hostname, port, url[:200])
        except (OSError, UnicodeError):
            return
