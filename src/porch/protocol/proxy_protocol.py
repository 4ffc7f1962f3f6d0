"""PROXY protocol v1 and v2 as a sans-IO core: the header a proxy sends before HTTP, parsed.

The specification is haproxy's ``doc/proxy-protocol.txt`` (revision 2020/03/05),
cited below as "PP §N". A proxy such as haproxy (``send-proxy`` /
``send-proxy-v2``) writes one header at the start of each connection telling
the address of the client it relays; the connection driver feeds the first
bytes of a connection to :class:`ProxyHeaderParser` until it returns a
:class:`ProxyResult` (whose ``rest`` holds the HTTP bytes that followed the
header) or raises :class:`ProxyHeaderError`.

Both versions are detected from the first byte (PP §2.2: "PROXY" for v1, the
binary signature for v2). Anything that does not match the specification
exactly is refused: v1 is one line of single-space separated fields with
canonical addresses of the announced family and ports without leading zeros,
ended by CRLF within 107 bytes (PP §2.1); v2 must have version 2, a known
command, family and transport, an address block as long as its family needs,
well-formed TLVs (at most ``max_tlv_bytes`` of them) and, when a CRC32C TLV is
present, the right checksum (PP §2.2.3). Outcomes never depend on how the
stream was split into reads: each check runs as soon as the bytes it looks at
have arrived, in stream order.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from porch.errors import ProtocolError

__all__ = [
    "MAX_TLV_BYTES",
    "V1_MAX_BYTES",
    "V2_SIGNATURE",
    "ProxyHeaderError",
    "ProxyHeaderParser",
    "ProxyResult",
]

V1_MAX_BYTES = 107  # PP §2.1: the longest valid line, CRLF included
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"  # PP §2.2: the 12-byte signature
MAX_TLV_BYTES = 4096  # porch's bound on the TLV part of a v2 header

_V1_PREFIX = b"PROXY "
_V2_FIXED_BYTES = 16  # PP §2.2: signature, version/command, family/transport, length
# PP §2.2: commands (low nibble of byte 13), families (high nibble of byte 14) and
# transports (low nibble of byte 14).
_LOCAL, _PROXY = 0x0, 0x1
_AF_UNSPEC, _AF_INET, _AF_INET6, _AF_UNIX = 0x0, 0x1, 0x2, 0x3
_UNSPEC, _STREAM, _DGRAM = 0x0, 0x1, 0x2
# PP §2.2: address block sizes (two addresses, then two ports for INET families).
_ADDRESS_BYTES = {_AF_UNSPEC: 0, _AF_INET: 12, _AF_INET6: 36, _AF_UNIX: 216}
_TLV_CRC32C = 0x03  # PP §2.2.3

# PP §2.1: "exactly 4 integers in the range [0..255] ... Heading zeroes are not
# permitted"; ports likewise in [0..65535] without heading zeroes.
_OCTET = rb"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_V1_IPV4 = re.compile(rb"(?:" + _OCTET + rb"\.){3}" + _OCTET)
_V1_IPV6 = re.compile(rb"[0-9A-Fa-f:.]{2,45}")  # then checked by ipaddress (no %zone)
_V1_PORT = re.compile(rb"0|[1-9][0-9]{0,4}")
_MAX_PORT = 65535

Address = tuple[str, int]


class ProxyHeaderError(ProtocolError):
    """The connection does not start with a valid PROXY header: close it (400 if answering)."""

    def __init__(self, message: str) -> None:
        super().__init__(400, message)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyResult:
    """A complete, valid PROXY header.

    ``source`` is the client the proxy relays (host, port); ``destination`` the
    address the client connected to. Both are None when the header says to use
    the real connection's endpoints: v1 ``UNKNOWN``, v2 ``LOCAL`` (health checks),
    v2 with an unspecified family or transport, and v2 ``AF_UNIX`` (no IP to
    report). ``rest`` is every byte received after the header: it belongs to HTTP.
    """

    source: Address | None
    destination: Address | None
    rest: bytes
    version: int  # 1 or 2


class ProxyHeaderParser:
    """Parses the PROXY header at the start of one connection (v1 or v2, detected).

    ``feed(data)`` returns None while the header is incomplete, then the
    :class:`ProxyResult` once; it raises :class:`ProxyHeaderError` (again on any
    later call) as soon as the bytes cannot start a valid header. At most
    ``16 + 216 + max_tlv_bytes`` bytes are ever buffered. A parser serves one
    connection: feeding it after it returned its result is a programming error.
    """

    __slots__ = ("_buffer", "_done", "_error", "_max_tlv_bytes")

    def __init__(self, *, max_tlv_bytes: int = MAX_TLV_BYTES) -> None:
        self._max_tlv_bytes = max_tlv_bytes
        self._buffer = b""
        self._error: str | None = None
        self._done = False

    def feed(self, data: bytes) -> ProxyResult | None:
        """Add received bytes; the result once the whole header is there, else None."""
        if self._error is not None:
            raise ProxyHeaderError(self._error)
        if self._done:
            raise RuntimeError("the PROXY header was already parsed; feed HTTP bytes elsewhere")
        buffer = self._buffer + data if self._buffer else data
        try:
            result = self._parse(buffer)
        except ProxyHeaderError as exc:
            self._error = str(exc)
            self._buffer = b""
            raise
        if result is None:
            self._buffer = buffer
        else:
            self._done = True
            self._buffer = b""
        return result

    def _parse(self, buffer: bytes) -> ProxyResult | None:
        if not buffer:
            return None
        # PP §2.2 (detecting the version): the first byte tells them apart.
        if buffer[0] == V2_SIGNATURE[0]:
            return self._parse_v2(buffer)
        return _parse_v1(buffer)

    # --- version 2 (PP §2.2) -----------------------------------------------------

    def _parse_v2(self, buffer: bytes) -> ProxyResult | None:
        seen = min(len(buffer), len(V2_SIGNATURE))
        if buffer[:seen] != V2_SIGNATURE[:seen]:
            raise ProxyHeaderError("not a PROXY protocol header (bad v2 signature)")
        if len(buffer) > 12:
            _check_version_command(buffer[12])
        if len(buffer) > 13:
            _check_family(buffer[12] & 0x0F, buffer[13])
        if len(buffer) < _V2_FIXED_BYTES:
            return None
        length = int.from_bytes(buffer[14:16], "big")
        self._check_length(buffer[12] & 0x0F, buffer[13], length)
        end = _V2_FIXED_BYTES + length
        if len(buffer) < end:
            return None
        return _v2_result(buffer[:end], rest=buffer[end:])

    def _check_length(self, command: int, family_byte: int, length: int) -> None:
        family, transport = family_byte >> 4, family_byte & 0x0F
        limit = _ADDRESS_BYTES[family] + self._max_tlv_bytes
        if length > limit:
            raise ProxyHeaderError(
                f"PROXY v2 header announces {length} bytes after its fixed part, "
                f"more than the {limit} accepted"
            )
        size = _address_size(family, transport)
        # PP §2.2: LOCAL ignores the address block; PROXY needs all of it.
        if command == _PROXY and size is not None and length < size:
            raise ProxyHeaderError(
                f"PROXY v2 address block of {length} bytes is shorter than "
                f"the {size} bytes its family needs"
            )


def _check_version_command(byte: int) -> None:
    # PP §2.2: "the receiver must only accept" version 2; "Receivers must drop
    # connections presenting unexpected values" of the command.
    if byte >> 4 != 2:
        raise ProxyHeaderError(f"unsupported PROXY protocol version {byte >> 4} (expected 2)")
    if byte & 0x0F not in (_LOCAL, _PROXY):
        raise ProxyHeaderError(f"unknown PROXY v2 command 0x{byte & 0x0F:x}")


def _check_family(command: int, byte: int) -> None:
    # PP §2.2: other families and transports "must be rejected as invalid by receivers".
    family, transport = byte >> 4, byte & 0x0F
    if family not in _ADDRESS_BYTES or transport not in (_UNSPEC, _STREAM, _DGRAM):
        raise ProxyHeaderError(f"invalid PROXY v2 address family/transport byte 0x{byte:02x}")
    if command == _PROXY and transport == _DGRAM:
        raise ProxyHeaderError("PROXY v2 header relays a datagram (UDP) connection")


def _address_size(family: int, transport: int) -> int | None:
    """Bytes of the address block, or None when the sender left it unspecified."""
    if family == _AF_UNSPEC and transport == _UNSPEC:
        return 0  # PP §2.2: \x00, "ignore any address information"
    if family == _AF_UNSPEC or transport == _UNSPEC:
        return None
    return _ADDRESS_BYTES[family]


def _v2_result(header: bytes, *, rest: bytes) -> ProxyResult:
    command = header[12] & 0x0F
    family, transport = header[13] >> 4, header[13] & 0x0F
    size = _address_size(family, transport)
    block = header[_V2_FIXED_BYTES:]
    unknown = ProxyResult(source=None, destination=None, rest=rest, version=2)
    if size is None or len(block) < size:
        return unknown  # only LOCAL gets here with a short block (checked above)
    _check_tlvs(header, start=_V2_FIXED_BYTES + size)
    # PP §2.2: LOCAL means "use the real connection endpoints"; AF_UNIX paths
    # cannot become REMOTE_ADDR, so the real endpoints are used for them too.
    if command == _LOCAL or family in (_AF_UNSPEC, _AF_UNIX):
        return unknown
    width = 4 if family == _AF_INET else 16
    ports = 2 * width
    return ProxyResult(
        source=(_ip_text(block[:width]), int.from_bytes(block[ports : ports + 2], "big")),
        destination=(
            _ip_text(block[width:ports]),
            int.from_bytes(block[ports + 2 : ports + 4], "big"),
        ),
        rest=rest,
        version=2,
    )


def _ip_text(packed: bytes) -> str:
    if len(packed) == 4:
        return str(ipaddress.IPv4Address(packed))
    return _ipv6_text(ipaddress.IPv6Address(packed))


def _ipv6_text(address: ipaddress.IPv6Address) -> str:
    """The text getpeername() gives (inet_ntop): compressed, IPv4-mapped ones dotted."""
    mapped = address.ipv4_mapped
    return f"::ffff:{mapped}" if mapped is not None else str(address)


def _check_tlvs(header: bytes, *, start: int) -> None:
    """Walk the TLVs (PP §2.2: type, 2-byte length, value); verify a CRC32C one."""
    offset = start
    crc_offsets: list[int] = []
    while offset < len(header):
        if offset + 3 > len(header):
            raise ProxyHeaderError("PROXY v2 header ends inside a TLV's type and length")
        kind = header[offset]
        length = int.from_bytes(header[offset + 1 : offset + 3], "big")
        value_at = offset + 3
        offset = value_at + length
        if offset > len(header):
            raise ProxyHeaderError(f"PROXY v2 TLV 0x{kind:02x} runs past the end of the header")
        if kind == _TLV_CRC32C:
            if length != 4:
                raise ProxyHeaderError(f"PROXY v2 CRC32C TLV has {length} bytes instead of 4")
            crc_offsets.append(value_at)
    if crc_offsets:
        _check_crc32c(header, crc_offsets)


def _check_crc32c(header: bytes, offsets: list[int]) -> None:
    # PP §2.2.3: the checksum of the whole header with the checksum field zeroed.
    zeroed = bytearray(header)
    for at in offsets:
        zeroed[at : at + 4] = bytes(4)
    actual = _crc32c(bytes(zeroed))
    for at in offsets:
        if int.from_bytes(header[at : at + 4], "big") != actual:
            raise ProxyHeaderError("PROXY v2 header fails its CRC32C checksum")


def _crc32c_entry(index: int) -> int:
    crc = index
    for _ in range(8):
        crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1  # Castagnoli, reflected
    return crc


_CRC32C_TABLE = tuple(_crc32c_entry(index) for index in range(256))


def _crc32c(data: bytes) -> int:
    """CRC32C (Castagnoli) as RFC 4960 Appendix B computes it; only v2 headers go through it."""
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# --- version 1 (PP §2.1) -------------------------------------------------------------


def _parse_v1(buffer: bytes) -> ProxyResult | None:
    head = buffer[:V1_MAX_BYTES]
    seen = min(len(head), len(_V1_PREFIX))
    if head[:seen] != _V1_PREFIX[:seen]:
        raise ProxyHeaderError("not a PROXY protocol header")
    end = head.find(b"\n")
    # PP §2.1: "The receiver must not tolerate a single CR or LF character to end
    # the line". The first CR or LF decides, so the outcome does not depend on splits.
    scan = head if end < 0 else head[:end]
    cr = scan.find(b"\r")
    if 0 <= cr < len(scan) - 1:
        raise ProxyHeaderError("PROXY v1 line has a CR not followed by LF")
    if end < 0:
        if len(head) >= V1_MAX_BYTES:
            raise ProxyHeaderError(f"PROXY v1 line has no CRLF within {V1_MAX_BYTES} bytes")
        return None
    if cr != end - 1:
        raise ProxyHeaderError("PROXY v1 line ends with a bare LF instead of CRLF")
    source, destination = _v1_addresses(head[len(_V1_PREFIX) : end - 1])
    return ProxyResult(source=source, destination=destination, rest=buffer[end + 1 :], version=1)


def _v1_addresses(line: bytes) -> tuple[Address | None, Address | None]:
    """The fields after "PROXY ": protocol, then source, destination and their ports."""
    fields = line.split(b" ")
    protocol = fields[0]
    if protocol == b"UNKNOWN":
        # PP §2.1: "the receiver must ignore anything presented before the CRLF".
        return None, None
    if protocol not in (b"TCP4", b"TCP6"):
        raise ProxyHeaderError(f"unsupported PROXY v1 protocol {protocol!r}")
    if len(fields) != 5:
        raise ProxyHeaderError(
            "PROXY v1 line must be 'PROXY TCP4|TCP6 SRC DST SRCPORT DSTPORT' "
            f"with single spaces, got {len(fields) - 1} fields after {protocol.decode()}"
        )
    ipv6 = protocol == b"TCP6"
    source = (_v1_ip(fields[1], ipv6=ipv6), _v1_port(fields[3]))
    destination = (_v1_ip(fields[2], ipv6=ipv6), _v1_port(fields[4]))
    return source, destination


def _v1_ip(field: bytes, *, ipv6: bool) -> str:
    if not ipv6:
        if not _V1_IPV4.fullmatch(field):
            raise ProxyHeaderError(f"PROXY v1 TCP4 address {field!r} is not a canonical IPv4")
        return field.decode("ascii")
    if _V1_IPV6.fullmatch(field):
        try:
            return _ipv6_text(ipaddress.IPv6Address(field.decode("ascii")))
        except ValueError:
            pass
    raise ProxyHeaderError(f"PROXY v1 TCP6 address {field!r} is not an IPv6 address")


def _v1_port(field: bytes) -> int:
    if not _V1_PORT.fullmatch(field) or int(field) > _MAX_PORT:
        raise ProxyHeaderError(
            f"PROXY v1 port {field!r} is not a number 0-{_MAX_PORT} without leading zeros"
        )
    return int(field)
