"""The SSRF guard (DESIGN §4c): URL rules, and every address class refused, with an injected resolver."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from webhooks.ssrf import CheckedUrl, WebhookRefused, check_webhook_url

pytestmark = pytest.mark.unit

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"


def resolving(*addresses: str):
    calls: list[tuple[str, int]] = []

    def resolver(host: str, port: int) -> list[str]:
        calls.append((host, port))
        return list(addresses)

    resolver.calls = calls  # type: ignore[attr-defined]
    return resolver


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("10.0.0.1", "private"),
        ("10.255.255.255", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "metadata"),
        ("169.254.1.1", "link-local"),
        ("100.64.0.1", "CGNAT"),
        ("100.127.255.254", "CGNAT"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),  # broadcast, inside 240/4
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("fd00:ec2::254", "metadata"),
        ("fe80::1", "link-local"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.1.2.3", "private"),
        ("::ffff:169.254.169.254", "metadata"),
        ("64:ff9b::a9fe:a9fe", "metadata"),  # NAT64 of 169.254.169.254
        ("2002:a00:1::1", "private"),  # 6to4 of 10.0.0.1
        ("198.18.0.1", "private"),  # benchmarking
        ("192.0.2.1", "private"),  # documentation
    ],
)
def test_every_non_public_address_is_refused_from_dns(address, why):
    with pytest.raises(WebhookRefused) as refused:
        check_webhook_url("https://hooks.example.com/in", resolving(PUBLIC_V4, address))
    assert str(ipaddress.ip_address(address)) in refused.value.reason  # the address, in its canonical form
    assert why in refused.value.reason
    assert refused.value.permanent is False  # DNS may say something else later


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/x",
        "https://[::1]/x",
        "https://[::ffff:127.0.0.1]/x",
        "https://10.0.0.1/x",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00:ec2::254]/",
    ],
)
def test_address_literals_are_judged_without_dns_and_permanently(url):
    resolver = resolving(PUBLIC_V4)
    with pytest.raises(WebhookRefused) as refused:
        check_webhook_url(url, resolver)
    assert refused.value.permanent is True
    assert resolver.calls == []


def test_a_public_host_passes_with_every_address_it_resolved_to():
    resolver = resolving(PUBLIC_V4, PUBLIC_V6, PUBLIC_V4)
    checked = check_webhook_url("https://hooks.example.com:8443/in?x=1", resolver)
    assert checked == CheckedUrl(
        url="https://hooks.example.com:8443/in?x=1",
        scheme="https",
        host="hooks.example.com",
        port=8443,
        target="/in?x=1",
        addresses=(PUBLIC_V4, PUBLIC_V6),
    )
    assert checked.host_header == "hooks.example.com:8443"
    assert resolver.calls == [("hooks.example.com", 8443)]


def test_default_port_and_path():
    checked = check_webhook_url("https://hooks.example.com", resolving(PUBLIC_V4))
    assert (checked.port, checked.target, checked.host_header) == (443, "/", "hooks.example.com")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://hooks.example.com/in", "https"),
        ("ftp://hooks.example.com/in", "https"),
        ("https://user:pw@hooks.example.com/in", "credentials"),
        ("https://hooks.example.com@evil.example/in", "credentials"),
        ("https:///in", "no host"),
        ("https://hooks.example.com/in#frag", "fragment"),
        ("https://hooks.example.com:0/in", "port"),
        ("https://hooks.example.com:99999/in", "malformed"),
        ("https://hooks.example.com/a b", "spaces"),
        ("https://hooks.example.com/\n", "control"),
        ("https://hooks.example.com/" + "a" * 2030, "at most 2048"),
        ("https://bücher.example/in", "ASCII"),
    ],
)
def test_url_rules(url, why):
    resolver = resolving(PUBLIC_V4)
    with pytest.raises(WebhookRefused) as refused:
        check_webhook_url(url, resolver)
    assert why in refused.value.reason
    assert refused.value.permanent is True


def test_a_url_of_exactly_2048_characters_passes():
    url = "https://hooks.example.com/" + "a" * (2048 - len("https://hooks.example.com/"))
    assert len(url) == 2048
    assert check_webhook_url(url, resolving(PUBLIC_V4)).url == url


def test_local_mode_allows_plain_http_and_loopback_only():
    checked = check_webhook_url("http://127.0.0.1:8080/hook", resolving(), allow_local=True)
    assert (checked.scheme, checked.addresses) == ("http", ("127.0.0.1",))
    assert checked.host_header == "127.0.0.1:8080"
    named = check_webhook_url("http://localhost:9/h", resolving("::1", "127.0.0.1"), allow_local=True)
    assert named.addresses == ("::1", "127.0.0.1")
    for address in ("10.0.0.1", "169.254.169.254", "192.168.0.1"):
        with pytest.raises(WebhookRefused):
            check_webhook_url("http://inside.example/h", resolving(address), allow_local=True)


def test_a_host_that_does_not_resolve_is_refused_for_now():
    with pytest.raises(WebhookRefused) as refused:
        check_webhook_url("https://nowhere.example/h", resolving())
    assert refused.value.permanent is False
    assert "no address" in refused.value.reason


def test_system_resolver_on_a_literal_name(monkeypatch):
    from webhooks import ssrf

    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, type: [(2, 1, 6, "", ("127.0.0.1", port))])
    assert ssrf.system_resolver("localhost", 80) == ["127.0.0.1"]

    def fails(host, port, type):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fails)
    with pytest.raises(WebhookRefused, match="does not resolve"):
        ssrf.system_resolver("nowhere.invalid", 443)


def test_a_resolver_that_cannot_answer_now_is_told_apart_from_a_name_that_does_not_exist(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from webhooks.ssrf import ResolverUnavailable, system_resolver

    def again(*_: object, **__: object) -> None:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    def nowhere(*_: object, **__: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", again)
    with pytest.raises(ResolverUnavailable) as unavailable:
        system_resolver("hooks.example.com", 443)
    assert unavailable.value.permanent is False
    assert unavailable.value.reason == (
        "host 'hooks.example.com' could not be resolved for now: "
        "[Errno -3] Temporary failure in name resolution"
    )
    monkeypatch.setattr(socket, "getaddrinfo", nowhere)
    with pytest.raises(WebhookRefused) as refused:
        system_resolver("hooks.example.com", 443)
    assert not isinstance(refused.value, ResolverUnavailable)
    assert (
        refused.value.reason
        == "host 'hooks.example.com' does not resolve: [Errno -2] Name or service not known"
    )
