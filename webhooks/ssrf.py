"""Which webhook URLs we may call (DESIGN §4c SSRF rules): pure, used at submit and at delivery.

`check_webhook_url` applies the URL rules, resolves the host once through the resolver it is
given, and refuses the URL when ANY address is not a public unicast one. The sender then
connects to `CheckedUrl.addresses[0]` itself (never to the name), so a DNS answer that changes
between the check and the connection cannot take it anywhere else.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

MAX_URL_LENGTH: Final = 2048
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]

# Cloud metadata endpoints: link-local or unique-local anyway, named so the reason says so.
METADATA_ADDRESSES: Final = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
CGNAT: Final = ipaddress.ip_network("100.64.0.0/10")
# IPv6 prefixes that carry an IPv4 address a gateway would connect to: judged by that address.
NAT64: Final = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
SIX_TO_FOUR: Final = ipaddress.ip_network("2002::/16")


class WebhookRefused(ValueError):
    """A webhook URL we will not call; `reason` says why, for the 400 `INVALID_WEBHOOK` answer.

    `permanent` is False when only the host's current addresses are refused (DNS may change).
    """

    def __init__(self, reason: str, *, permanent: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class ResolverUnavailable(WebhookRefused):
    """The resolver could not answer for now (`EAI_AGAIN`): nothing is known about the host yet."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, permanent=False)


@dataclass(frozen=True, slots=True)
class CheckedUrl:
    """A URL that passed every rule, with the addresses it resolved to (all of them allowed)."""

    url: str
    scheme: str
    host: str  # the name for SNI, certificate check and the Host header (IPv6 without brackets)
    port: int
    target: str  # path and query, as sent in the request line
    addresses: tuple[str, ...]

    @property
    def host_header(self) -> str:
        """The Host header: the name, with the port when it is not the scheme's default."""
        name = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return name if self.port == default else f"{name}:{self.port}"


def system_resolver(host: str, port: int) -> list[str]:
    """Every address `getaddrinfo` gives for `host` (TCP), in its order; WebhookRefused when none."""
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        if error.errno == socket.EAI_AGAIN:
            raise ResolverUnavailable(f"host {host!r} could not be resolved for now: {error}") from None
        raise WebhookRefused(f"host {host!r} does not resolve: {error}", permanent=False) from None
    except UnicodeError as error:
        raise WebhookRefused(f"host {host!r} does not resolve: {error}", permanent=False) from None
    return [str(sockaddr[0]) for _family, _type, _proto, _name, sockaddr in answers]


def refusal_of(address: IpAddress, *, allow_loopback: bool = False) -> str | None:
    """Why a connection to `address` is refused, or None when it is a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = refusal_of(embedded, allow_loopback=allow_loopback)
            return None if reason is None else f"embeds {embedded}, which {reason}"
    if address in METADATA_ADDRESSES:
        return "is a cloud metadata address"
    if address.is_loopback:
        return None if allow_loopback else "is a loopback address"
    checks = (
        (address.is_unspecified, "is unspecified"),
        (address.is_multicast, "is multicast"),
        (address.is_link_local, "is link-local"),
        (isinstance(address, ipaddress.IPv4Address) and address in CGNAT, "is shared (CGNAT 100.64/10)"),
        (address.is_reserved, "is reserved"),
        (address.is_private, "is private"),
        (not address.is_global, "is not a global address"),
    )
    for refused, reason in checks:
        if refused:
            return reason
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if any(address in network for network in NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in SIX_TO_FOUR:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's address (the server is not where we would connect)
    return None


def _parse(url: str, allow_local: bool) -> tuple[str, str, int, str]:
    if len(url) > MAX_URL_LENGTH:
        raise WebhookRefused(f"webhook URL is {len(url)} characters; at most {MAX_URL_LENGTH} allowed")
    if any(ord(char) <= 0x20 or ord(char) == 0x7F for char in url):
        raise WebhookRefused("webhook URL must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise WebhookRefused(f"webhook URL is malformed: {error}") from None
    schemes = ("https", "http") if allow_local else ("https",)
    if parts.scheme not in schemes:
        raise WebhookRefused("webhook URL must use https")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise WebhookRefused("webhook URL must not carry credentials")
    host = parts.hostname
    if not host:
        raise WebhookRefused("webhook URL has no host")
    if parts.fragment:
        raise WebhookRefused("webhook URL must not have a fragment")
    if port == 0:
        raise WebhookRefused("webhook URL port must be from 1 to 65535")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return (
        parts.scheme,
        host.rstrip(".") if host != "." else host,
        port or _default_port(parts.scheme),
        target,
    )


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def check_webhook_url(
    url: str, resolver: Resolver = system_resolver, allow_local: bool = False
) -> CheckedUrl:
    """The checked URL, or WebhookRefused(reason) (DESIGN §4c).

    https only, at most 2,048 characters, no credentials; the host (an IP literal is taken as
    it is, never resolved) must resolve, and every address must be public unicast: not
    private, loopback, link-local, CGNAT, multicast, reserved, unspecified or a cloud metadata
    address, IPv4 inside IPv6 (mapped, NAT64, 6to4, Teredo) judged by its IPv4 address.
    `allow_local` (the local stack only) also allows plain http and loopback addresses.
    """
    scheme, host, port, target = _parse(url, allow_local)
    try:
        literal: IpAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        answers: Sequence[str] = [str(literal)]
    else:
        if not host.isascii():
            raise WebhookRefused("webhook host must be ASCII (use its punycode form)")
        answers = resolver(host, port)
    if not answers:
        raise WebhookRefused(f"host {host!r} has no address", permanent=False)
    addresses: list[str] = []
    for answer in answers:
        try:
            address = ipaddress.ip_address(answer.split("%", 1)[0])  # a scope id names an interface
        except ValueError:
            raise WebhookRefused(
                f"host {host!r} resolved to {answer!r}, not an address", permanent=False
            ) from None
        reason = refusal_of(address, allow_loopback=allow_local)
        if reason is not None:
            permanent = literal is not None
            raise WebhookRefused(
                f"webhook host {host!r} resolves to {address}, which {reason}", permanent=permanent
            )
        if str(address) not in addresses:
            addresses.append(str(address))
    return CheckedUrl(url=url, scheme=scheme, host=host, port=port, target=target, addresses=tuple(addresses))
