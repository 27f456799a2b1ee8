"""Sending webhook requests without letting a URL reach into our own network (SSRF).

Every request resolves the host name, checks every address it resolves to
and then connects to the checked address itself (the Host header and the TLS
server name stay the host name), so a DNS answer that changes between check
and connect (DNS rebinding) cannot send us elsewhere. Only public (global)
addresses pass, unless an address lies in a network the operator allowed
(``LEADVAULT_WEBHOOK_ALLOW_NETWORKS``); plain ``http://`` is refused for
public addresses, since bodies may carry personal data. Redirects are never
followed, a 3xx is a failed attempt.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import HTTPError, NewConnectionError, SSLError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from leadvault.i18n import N_
from leadvault.refusals import RefusedRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
_MAX_RESPONSE_BYTES = 64 * 1024
USER_AGENT = "Leadvault-Webhooks/1"


class AddressRefused(RefusedRequest):
    """The URL is malformed or leads to an address we do not send to (``export.webhooks``
    passes the message on as a WebhookError; ``str``, the English text, is the delivery
    log's)."""


class SendFailed(Exception):
    """The request could not be completed (connection, TLS, timeout)."""


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise AddressRefused(N_("%(host)s does not resolve"), host=host) from None
    return [str(info[4][0]) for info in infos]


@dataclasses.dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def parse_url(url: str) -> Target:
    """Split a webhook URL; AddressRefused when it cannot be one."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise AddressRefused(N_("the URL is malformed")) from None
    if parts.scheme not in {"http", "https"}:
        raise AddressRefused(
            N_("a webhook URL starts with https:// (or http:// on an allowed network)")
        )
    if not parts.hostname:
        raise AddressRefused(N_("the URL has no host"))
    if parts.username or parts.password:
        raise AddressRefused(
            N_("put credentials in the path or a header, not in the URL's user part")
        )
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    default = 443 if parts.scheme == "https" else 80
    return Target(parts.scheme, parts.hostname, port or default, path)


def _kind(ip: IPAddress) -> str | None:
    """Why an address is not public, or None when it is."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return _kind(ip.ipv4_mapped)
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local (cloud metadata)"
    if ip.is_multicast:
        return "multicast"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "reserved"
    return None


class Guard:
    """Decides which addresses a webhook may reach."""

    def __init__(
        self, allow_networks: Iterable[str] = (), resolver: Resolver | None = None
    ) -> None:
        self.allowed = [ipaddress.ip_network(n, strict=False) for n in allow_networks]
        self.resolver = resolver or system_resolver

    def _explicitly_allowed(self, ip: IPAddress) -> bool:
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        return any(c in net for c in candidates for net in self.allowed if c.version == net.version)

    def check(self, target: Target) -> str:
        """Resolve and check; return the address to connect to, or raise AddressRefused."""
        addresses = self.resolver(target.host, target.port)
        if not addresses:
            raise AddressRefused(N_("%(host)s does not resolve"), host=target.host)
        chosen: str | None = None
        for raw in addresses:
            ip = ipaddress.ip_address(raw.split("%", 1)[0])
            if self._explicitly_allowed(ip):
                chosen = chosen or str(ip)
                continue
            kind = _kind(ip)
            if kind is not None:
                # One bad answer refuses the host: a name that also points inward is not trusted.
                raise AddressRefused(
                    N_(
                        "%(host)s resolves to %(ip)s, a %(kind)s address "
                        "(allow it with LEADVAULT_WEBHOOK_ALLOW_NETWORKS)"
                    ),
                    host=target.host,
                    ip=str(ip),
                    kind=kind,
                )
            if target.scheme != "https":
                raise AddressRefused(N_("%(host)s is public: use https://"), host=target.host)
            chosen = chosen or str(ip)
        assert chosen is not None
        return chosen


@dataclasses.dataclass(frozen=True)
class Response:
    status: int
    duration_ms: int
    retry_after: float | None = None


class Client:
    """Posts webhook bodies through the guard; keeps one connection pool per checked address."""

    def __init__(self, guard: Guard, *, timeout: float, pool_size: int = 4) -> None:
        self.guard = guard
        self.timeout = urllib3.Timeout(connect=min(timeout, 10.0), read=timeout)
        self.pool_size = pool_size
        self._pools: dict[tuple[str, str, int, str], urllib3.HTTPConnectionPool] = {}
        self._lock = threading.Lock()

    def _pool(self, target: Target, ip: str) -> urllib3.HTTPConnectionPool:
        key = (target.scheme, ip, target.port, target.host)
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                common = {
                    "timeout": self.timeout,
                    "maxsize": self.pool_size,
                    "block": False,
                    "retries": False,
                }
                if target.scheme == "https":
                    # Connect to the checked IP; verify the certificate for the host name.
                    pool = urllib3.HTTPSConnectionPool(
                        ip,
                        target.port,
                        server_hostname=target.host,
                        assert_hostname=target.host,
                        cert_reqs="CERT_REQUIRED",
                        **common,
                    )
                else:
                    pool = urllib3.HTTPConnectionPool(ip, target.port, **common)
                self._pools[key] = pool
            return pool

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Response:
        """Send once; raises AddressRefused or SendFailed, else returns the status."""
        target = parse_url(url)
        ip = self.guard.check(target)
        pool = self._pool(target, ip)
        started = time.perf_counter()
        try:
            response = pool.urlopen(
                "POST",
                target.path,
                body=body,
                headers={
                    **headers,
                    "Host": target.host_header,
                    "User-Agent": USER_AGENT,
                    "Content-Type": "application/json",
                },
                redirect=False,
                retries=False,
                assert_same_host=False,
                preload_content=False,
            )
        except (NewConnectionError, ConnectionError) as exc:
            raise SendFailed(_reason(exc, "connection refused")) from None
        except Urllib3Timeout:
            raise SendFailed("timed out") from None
        except SSLError:
            raise SendFailed("TLS handshake or certificate check failed") from None
        except HTTPError as exc:
            raise SendFailed(_reason(exc, "connection failed")) from None
        try:
            # We never need the body; read a little so the connection can be reused.
            left = response.read(_MAX_RESPONSE_BYTES + 1, decode_content=False)
        except (HTTPError, OSError):
            left = b"x" * (_MAX_RESPONSE_BYTES + 1)
        if len(left) > _MAX_RESPONSE_BYTES:
            response.close()
        else:
            response.release_conn()
        duration = int((time.perf_counter() - started) * 1000)
        return Response(
            response.status, duration, _retry_after(response.headers.get("Retry-After"))
        )

    def close(self) -> None:
        with self._lock:
            for pool in self._pools.values():
                pool.close()
            self._pools.clear()


def _reason(exc: BaseException, default: str) -> str:
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    if "timed out" in text or "timeout" in text:
        return "timed out"
    if "reset" in text:
        return "connection reset"
    return default


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        return None  # an HTTP date: rare for webhooks; the schedule decides
