"""The worker's cheaper forms give what the whole computation gives: an address's
canonical form (cached per domain) and a truncated IP address (an integer mask)."""

from __future__ import annotations

import ipaddress
import random

from email_validator import EmailNotValidError, validate_email

from leadvault import addresses
from leadvault.crypto import truncate_ip
from tests.test_capture_plain_load import _DOMAINS, _LOCALS


def _whole(value: str) -> str | None:
    """email-validator's normal form, as canonical gave it before its domain cache."""
    try:
        return validate_email(
            value.strip(), check_deliverability=False, globally_deliverable=False
        ).normalized
    except (EmailNotValidError, UnicodeError):
        return None


def _canonical(value: str) -> str | None:
    try:
        return addresses.canonical(value)
    except addresses.InvalidAddress:
        return None


def test_canonical_gives_what_email_validator_gives() -> None:
    addresses.domain_forms.cache_clear()
    extra = ["no-at-sign", "@example.com", "a@", "a@@b.com", "a@b.com@c.com", " Ada@Example.COM \n"]
    for _round in range(2):  # the second round from the domain cache
        for local in _LOCALS:
            for domain in _DOMAINS:
                value = f"{local}@{domain}"
                assert _canonical(value) == _whole(value), value
        for value in extra:
            assert _canonical(value) == _whole(value), value
    assert addresses.domain_forms.cache_info().hits > 0
    # Refused addresses keep email-validator's message.
    try:
        addresses.canonical("ada@a..com")
    except addresses.InvalidAddress as exc:
        assert "period" in str(exc)
    else:
        raise AssertionError("a..com was accepted")


def _truncated_by_network(address: str) -> str:
    ip = ipaddress.ip_address(address)
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)


def test_truncate_ip_gives_the_network_address_string() -> None:
    rng = random.Random(13)
    samples = [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(5000)]
    samples += [str(ipaddress.IPv6Address(rng.getrandbits(128))) for _ in range(5000)]
    # Short IPv6 forms (zero runs), IPv4-mapped and scoped addresses, the ends.
    samples += [str(ipaddress.IPv6Address(rng.getrandbits(48) << 80)) for _ in range(500)]
    samples += [str(ipaddress.IPv6Address(rng.getrandbits(16) << 112 | 1)) for _ in range(500)]
    samples += ["::ffff:192.0.2.77", "fe80::1%eth0", "::", "::1", "0.0.0.0", "255.255.255.255"]
    samples += ["ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db8::", "2001:db8:0:1::5"]
    for address in samples:
        assert truncate_ip(address) == _truncated_by_network(address), address
        assert truncate_ip(f" {address} ") == _truncated_by_network(address), address
    for bad in ["", None, "x", "1.2.3", "1.2.3.4/24", "::g"]:
        assert truncate_ip(bad) is None


def _parsed(address: str) -> str | None:
    """``truncate_ip`` as it was: every address parsed by ipaddress."""
    try:
        return _truncated_by_network(address.strip())
    except ValueError:
        return None


def test_truncate_ip_takes_a_dotted_quad_as_ipaddress_takes_it() -> None:
    """A dotted quad's /24 is cut from its text; what ipaddress would not accept as it
    is written (leading zeros, numbers past 255, other digits) is parsed as before."""
    rng = random.Random(7)
    samples = ["0.0.0.0", "9.9.9.9", "10.0.0.255", "99.100.199.200", "249.250.255.255"]
    samples += ["01.2.3.4", "1.2.3.04", "1.2.3.00", "256.1.1.1", "1.2.3.256", "1.2.3.1000"]
    samples += ["1.2.3", "1.2.3.4.5", "1..2.3", ".1.2.3", "1.2.3.", "1.2.3.4\n", "\t1.2.3.4 "]
    samples += ["1.2.3.\u0663", "1.2.3.\u00b2", "\uff11.2.3.4", "1.2.3.4 5", "+1.2.3.4", "1.2.3.-4"]
    for _ in range(20000):
        parts = [
            rng.choice([str(rng.randint(0, 299)), f"0{rng.randint(0, 99)}", str(rng.randint(0, 9))])
            for _ in range(rng.choice([3, 4, 4, 4, 5]))
        ]
        samples.append(".".join(parts))
    for address in samples:
        assert truncate_ip(address) == _parsed(address), repr(address)
