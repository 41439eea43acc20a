"""The outbound guard's rules and the inbound limits' arithmetic, without I/O."""

from __future__ import annotations

import ipaddress

import pytest

from handlers.limits import RateLimited, RateLimiter
from hub.infra.config import Settings
from hub.infra.outbound import OutboundGuard, OutboundRefused, address_refusal, parse_networks
from hub.ocpi.limits import MAX_JSON_DEPTH, JsonTooDeep, depth_exceeds, loads_bounded

SANDBOX = OutboundGuard(parse_networks("127.0.0.0/8,::1/128"))
STRICT = OutboundGuard()


@pytest.mark.parametrize(("address", "reason"), [
    ("127.0.0.1", "loopback"), ("127.255.0.9", "loopback"), ("::1", "loopback"),
    ("10.0.0.1", "private"), ("172.16.5.4", "private"), ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"), ("169.254.0.1", "link-local"), ("fe80::1", "link-local"),
    ("100.64.0.1", "shared address space (CGNAT)"), ("100.127.255.254", "shared address space (CGNAT)"),
    ("fc00::1", "unique-local"), ("fd12:3456::1", "unique-local"),
    ("224.0.0.1", "multicast"), ("239.1.2.3", "multicast"), ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("240.0.0.1", "private"), ("255.255.255.255", "private"), ("192.0.2.1", "private"),
    ("198.18.0.1", "benchmarking"),
])
def test_addresses_that_are_no_public_unicast_are_refused(address, reason):
    assert address_refusal(ipaddress.ip_address(address)) == reason
    assert STRICT.refusal(address) == f"{address} is {reason}"


@pytest.mark.parametrize("address", [
    "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:10.0.0.1", "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1",
])
def test_an_ipv6_address_carrying_an_ipv4_one_is_judged_by_the_ipv4_inside(address):
    assert "inside" in STRICT.refusal(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "93.184.215.14", "2606:4700:4700::1111",
                                     "::ffff:8.8.8.8", "100.128.0.1", "172.32.0.1"])
def test_public_unicast_addresses_pass(address):
    assert STRICT.refusal(address) is None


def test_the_allow_list_lets_its_ranges_through_and_nothing_else():
    for address in ("127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"):
        assert SANDBOX.refusal(address) is None
        assert STRICT.refusal(address) is not None
    for address in ("169.254.169.254", "10.0.0.1", "100.64.0.1", "fc00::1", "::ffff:169.254.169.254"):
        assert SANDBOX.refusal(address) is not None
    lab = OutboundGuard(parse_networks("10.20.0.0/16"))
    assert lab.refusal("10.20.3.4") is None and lab.refusal("10.21.0.1") is not None


def test_check_url_refuses_names_resolving_to_refused_addresses_and_other_schemes():
    with pytest.raises(OutboundRefused, match=r"http://localhost:9/x: refused by the outbound guard, "
                                              r"(127\.0\.0\.1|::1) is loopback"):
        STRICT.check_url("http://localhost:9/x")
    SANDBOX.check_url("http://localhost:9/x")
    for url in ("ftp://8.8.8.8/x", "file:///etc/passwd", "http:///x", "8.8.8.8"):
        with pytest.raises(OutboundRefused, match="not an absolute http or https URL"):
            STRICT.check_url(url)
    with pytest.raises(OutboundRefused, match=r"169\.254\.169\.254 is link-local"):
        SANDBOX.check_url("http://169.254.169.254/latest/meta-data/")


def test_settings_default_to_public_addresses_only_and_name_a_bad_range():
    settings = Settings.from_env({})
    assert settings.partner_networks_allowed == ()
    assert settings.partner_max_response_bytes == 16 * 1024 * 1024
    assert settings.max_body_bytes == 4 * 1024 * 1024 and settings.rate_limit == 200
    allowed = Settings.from_env({"HUB_PARTNER_NETWORKS_ALLOWED": " 127.0.0.0/8, ::1/128 "}).outbound_guard()
    assert [str(n) for n in allowed.allowed] == ["127.0.0.0/8", "::1/128"]
    for bad in ("10.0.0.0/33", "localhost", "10.0.0.0/8;fc00::/7"):
        with pytest.raises(SystemExit, match="HUB_PARTNER_NETWORKS_ALLOWED: .* is not a CIDR range; give ranges like"):
            Settings.from_env({"HUB_PARTNER_NETWORKS_ALLOWED": bad})
    for key, bad in (("HUB_PARTNER_MAX_RESPONSE_BYTES", "0"), ("HUB_MAX_BODY_BYTES", "4MB"),
                     ("HUB_RATE_LIMIT", "-1"), ("HUB_RATE_LIMIT", "nan")):
        with pytest.raises(SystemExit, match=key):
            Settings.from_env({key: bad})
    assert Settings.from_env({"HUB_RATE_LIMIT": "0"}).rate_limit == 0


def test_json_nested_deeper_than_the_bound_is_refused_at_any_depth():
    def nested(depth: int) -> bytes:
        return b'{"a":' * (depth - 1) + b"[]" + b"}" * (depth - 1)

    assert loads_bounded(nested(MAX_JSON_DEPTH)) is not None
    for depth in (MAX_JSON_DEPTH + 1, 600, 1020, 5000):
        with pytest.raises(JsonTooDeep, match=f"JSON nested deeper than {MAX_JSON_DEPTH} levels"):
            loads_bounded(nested(depth))
    assert not depth_exceeds({"a": [1, {"b": "x"}]}, 3) and depth_exceeds({"a": [1, {"b": []}]}, 3)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_rate_limit_allows_bursts_of_twice_the_rate_per_platform_then_refuses_with_retry_after():
    clock = Clock()
    limiter = RateLimiter(5, clock)
    for _ in range(10):
        limiter.check("p1")
    with pytest.raises(RateLimited) as refused:
        limiter.check("p1")
    assert refused.value.http_status == 429 and refused.value.status_code == 2000
    assert refused.value.headers == {"Retry-After": "1"}
    limiter.check("p2")  # another platform has its own bucket
    clock.now += 0.2  # one token back
    limiter.check("p1")
    with pytest.raises(RateLimited):
        limiter.check("p1")
    RateLimiter(0, clock).check("p1")  # 0: no limit
    slow = RateLimiter(0.1, clock)
    slow.check("p")
    with pytest.raises(RateLimited) as refused:
        slow.check("p")
    assert refused.value.headers == {"Retry-After": "10"}
