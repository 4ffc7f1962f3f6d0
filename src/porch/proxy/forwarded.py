"""Trusted-proxy rules: believe forwarding headers from allowed peers, strip them from others.

From a peer in ``--forwarded-allow-ips``, RFC 7239 ``Forwarded`` (preferred when
present) or the ``X-Forwarded-For/-Proto/-Host/-Port/-Prefix`` family set
``REMOTE_ADDR``, ``wsgi.url_scheme``, ``HTTP_HOST``/``SERVER_NAME``/``SERVER_PORT``
and ``SCRIPT_NAME``. Through a chain of proxies the client is the right-most
address that is not itself a trusted proxy. From any other peer the headers are
removed before the app sees them, so a spoofed ``X-Forwarded-For`` never
reaches the app.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any, Final

from porch.protocol.h1_rules import valid_host
from porch.wsgi.environ import FORWARDING_KEYS, apply_host

__all__ = ["ForwardedRules"]

_HEADERS: Final = FORWARDING_KEYS
_X_HEADERS: Final = tuple(key for key in FORWARDING_KEYS if key != "HTTP_FORWARDED")
_SCHEMES: Final = frozenset({"http", "https"})

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ForwardedRules:
    """Which peers are trusted, and how their forwarding headers rewrite the environ."""

    __slots__ = ("_cache", "_networks", "_untrusted_style", "rfc7239", "trust_all")

    def __init__(self, allow: Sequence[str], *, style: str = "x-forwarded") -> None:
        # Only one header style is believed: a proxy that sets X-Forwarded-For
        # passes a client's own Forwarded header through untouched (and vice versa).
        self.rfc7239 = style == "forwarded"
        self._untrusted_style = _X_HEADERS if self.rfc7239 else ("HTTP_FORWARDED",)
        self.trust_all = "*" in allow
        self._networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(item, strict=False) for item in allow if item != "*"
        )
        self._cache: dict[str, bool] = {}

    def trusts(self, addr: str) -> bool:
        """True for a trusted proxy address. UNIX-socket peers ("") are local: trusted."""
        if self.trust_all or not addr:
            return True
        return self._listed(addr)

    def _listed(self, addr: str) -> bool:
        """``addr`` is in an explicit range. Addresses inside a forwarding header are
        judged by this alone: ``*`` trusts whoever connects, never what a client
        wrote into the header ahead of its proxy's own entry."""
        known = self._cache.get(addr)
        if known is None:
            known = self._match(addr)
            if len(self._cache) < 4096:
                self._cache[addr] = known
        return known

    def _match(self, addr: str) -> bool:
        ip = _ip(addr)
        if ip is None:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self._networks)

    def apply(self, environ: dict[str, Any]) -> None:
        """Rewrite ``environ`` in place for the peer in ``REMOTE_ADDR``.

        The worker calls it only for requests with a forwarding header
        (``build_environ``'s ``on_forwarding``); it checks again, so any caller may.
        """
        for key in _HEADERS:
            if key in environ:
                break
        else:
            return  # the common case: no forwarding header at all
        if not self.trusts(environ["REMOTE_ADDR"]):
            for key in _HEADERS:
                environ.pop(key, None)
            return
        for key in self._untrusted_style:
            environ.pop(key, None)
        if self.rfc7239:
            value = environ.get("HTTP_FORWARDED")
            addr, proto, host = self._from_forwarded(value) if value else ("", "", None)
        else:
            addr, proto, host = self._from_x_forwarded(environ)
        if addr and _is_ip(addr):  # not an address (a name, markup): the peer's stays
            environ["REMOTE_ADDR"] = addr
        if proto in _SCHEMES:
            environ["wsgi.url_scheme"] = proto
        if host and not valid_host(host.encode("latin-1", "replace")):
            host = None  # malformed (a path, a space, a second port): as if absent
        authority = host or environ.get("HTTP_HOST")
        if authority and (host or proto):
            # Re-derive SERVER_NAME/SERVER_PORT: the default port follows the new scheme.
            apply_host(environ, authority.encode("latin-1", "replace"))
        port = environ.get("HTTP_X_FORWARDED_PORT", "").strip()
        if port.isascii() and port.isdigit() and int(port) <= 65535:  # not "²", not 99999
            environ["SERVER_PORT"] = port
        prefix = environ.get("HTTP_X_FORWARDED_PREFIX", "").strip()
        if prefix.startswith("/") and "\\" not in prefix:
            environ["SCRIPT_NAME"] = prefix.rstrip("/")

    def _from_x_forwarded(self, environ: dict[str, Any]) -> tuple[str, str, str | None]:
        hops = _split_list(environ.get("HTTP_X_FORWARDED_FOR", ""))
        index = self._client_index(hops)
        addr = _strip_port(hops[index]) if index is not None else ""
        protos = _split_list(environ.get("HTTP_X_FORWARDED_PROTO", ""))
        proto = ""
        if protos:
            # Aligned with the chosen hop when each proxy appended one; else the last.
            aligned = index is not None and len(protos) == len(hops)
            proto = (protos[index] if aligned and index is not None else protos[-1]).lower()
        hosts = _split_list(environ.get("HTTP_X_FORWARDED_HOST", ""))
        return addr, proto, hosts[0] if hosts else None

    def _client_index(self, hops: list[str]) -> int | None:
        """Right-most hop that is not a listed proxy; the left-most if all are."""
        if not hops:
            return None
        for i in range(len(hops) - 1, -1, -1):
            if not self._listed(_strip_port(hops[i])):
                return i
        return 0

    def _from_forwarded(self, value: str) -> tuple[str, str, str | None]:
        """RFC 7239: the element added by the last proxy we do not trust is the client's."""
        elements = parse_forwarded(value)
        if not elements:
            return "", "", None
        index = self._client_index([e.get("for", "") for e in elements])
        chosen = elements[index if index is not None else -1]
        addr = _strip_port(chosen.get("for", ""))
        if addr.startswith("_") or addr.lower() == "unknown":
            addr = ""  # RFC 7239 §6.3 obfuscated or §6.2 unknown: keep the peer
        return addr, chosen.get("proto", "").lower(), chosen.get("host")


def parse_forwarded(value: str) -> list[dict[str, str]]:
    """Parse RFC 7239 §4 ``Forwarded``: elements of ``;``-separated pairs, quoted or not."""
    elements: list[dict[str, str]] = []
    current: dict[str, str] = {}
    i, n = 0, len(value)
    while i < n:
        while i < n and value[i] in " \t":
            i += 1
        eq = value.find("=", i)
        if eq == -1:
            break
        name = value[i:eq].strip().lower()
        i = eq + 1
        if i < n and value[i] == '"':
            end = i + 1
            chars = []
            while end < n and value[end] != '"':
                if value[end] == "\\" and end + 1 < n:
                    end += 1
                chars.append(value[end])
                end += 1
            token, i = "".join(chars), end + 1
        else:
            end = i
            while end < n and value[end] not in ";,":
                end += 1
            token, i = value[i:end].strip(), end
        if name:
            current[name] = token
        while i < n and value[i] in " \t":
            i += 1
        if i < n and value[i] == ",":
            elements.append(current)
            current = {}
        i += 1
    if current:
        elements.append(current)
    return elements


def _split_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _is_ip(addr: str) -> bool:
    known = _IS_IP.get(addr)
    if known is None:
        known = _ip(addr) is not None
        if len(_IS_IP) < 4096:
            _IS_IP[addr] = known
    return known


_IS_IP: Final[dict[str, bool]] = {}  # forwarded client addresses seen, and whether valid


def _ip(addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(addr.strip("[]"))
    except ValueError:
        return None


def _strip_port(addr: str) -> str:
    """``1.2.3.4:5`` -> ``1.2.3.4``; ``[::1]:5`` -> ``::1``; a bare IPv6 stays."""
    if addr.startswith("["):
        end = addr.find("]")
        return addr[1:end] if end != -1 else addr
    if addr.count(":") == 1:
        return addr.partition(":")[0]
    return addr
