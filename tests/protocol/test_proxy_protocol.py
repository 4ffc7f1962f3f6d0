"""ProxyHeaderParser: valid and malformed PROXY v1/v2 headers, whole, byte by byte, at any split."""

from __future__ import annotations

import ipaddress
import random
import struct
from dataclasses import dataclass, replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from porch.config import load_config
from porch.errors import ConfigError, ProtocolError
from porch.protocol import proxy_protocol
from porch.protocol.proxy_protocol import (
    MAX_TLV_BYTES,
    V1_MAX_BYTES,
    V2_SIGNATURE,
    ProxyHeaderError,
    ProxyHeaderParser,
    ProxyResult,
)

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HTTP = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"


@dataclass(frozen=True)
class Refused:
    """The parser raised ProxyHeaderError with this message."""

    message: str


Outcome = ProxyResult | Refused | None  # None: still waiting for bytes


def run(pieces: list[bytes], **options: int) -> Outcome:
    """Feed ``pieces`` in order; the result's ``rest`` also gets the pieces fed after it."""
    parser = ProxyHeaderParser(**options)
    for index, piece in enumerate(pieces):
        try:
            result = parser.feed(piece)
        except ProxyHeaderError as exc:
            return Refused(str(exc))
        if result is not None:
            return replace(result, rest=result.rest + b"".join(pieces[index + 1 :]))
    return None


def random_splits(data: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(set(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 8)))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def outcome(data: bytes, **options: int) -> Outcome:
    """The outcome of ``data`` fed whole, which byte by byte and random splits must equal."""
    whole = run([data], **options)
    assert run([data[i : i + 1] for i in range(len(data))], **options) == whole
    rng = random.Random(data)
    for _ in range(5):
        if len(data) > 1:
            assert run(random_splits(data, rng), **options) == whole
    return whole


def parsed(data: bytes, **options: int) -> ProxyResult:
    result = outcome(data, **options)
    assert isinstance(result, ProxyResult), result
    return result


def refused(data: bytes, **options: int) -> str:
    result = outcome(data, **options)
    assert isinstance(result, Refused), result
    return result.message


def v2(
    block: bytes = b"",
    *,
    command: int = 1,
    family: int = 0x11,
    version: int = 2,
    length: int | None = None,
) -> bytes:
    """A v2 header: signature, version/command, family/transport, length, block (PP §2.2)."""
    size = len(block) if length is None else length
    return V2_SIGNATURE + bytes([version << 4 | command, family]) + struct.pack("!H", size) + block


def ipv4_block(src: str, dst: str, sport: int, dport: int) -> bytes:
    return (
        ipaddress.IPv4Address(src).packed
        + ipaddress.IPv4Address(dst).packed
        + struct.pack("!HH", sport, dport)
    )


def ipv6_block(src: str, dst: str, sport: int, dport: int) -> bytes:
    return (
        ipaddress.IPv6Address(src).packed
        + ipaddress.IPv6Address(dst).packed
        + struct.pack("!HH", sport, dport)
    )


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + struct.pack("!H", len(value)) + value


def with_crc32c(header_without_crc: bytes, *, corrupt: bool = False) -> bytes:
    """Append a CRC32C TLV (PP §2.2.3) and fix the length; ``corrupt`` flips one bit."""
    data = bytearray(header_without_crc + tlv(0x03, bytes(4)))
    data[14:16] = struct.pack("!H", len(data) - 16)
    crc = proxy_protocol._crc32c(bytes(data)) ^ (1 if corrupt else 0)
    data[-4:] = struct.pack("!I", crc)
    return bytes(data)


# --- version 1 (PP §2.1) ------------------------------------------------------------


def test_v1_tcp4_and_the_http_bytes_after_it() -> None:
    result = parsed(b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n" + HTTP)
    assert result == ProxyResult(
        source=("192.168.0.1", 56324), destination=("192.168.0.11", 443), rest=HTTP, version=1
    )


def test_v1_tcp4_longest_line_and_port_zero() -> None:
    line = b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n"
    assert len(line) == 56  # PP §2.1
    assert parsed(line).source == ("255.255.255.255", 65535)
    assert parsed(b"PROXY TCP4 0.0.0.0 10.0.0.1 0 0\r\n").source == ("0.0.0.0", 0)


@pytest.mark.parametrize(
    ("src", "expected"),
    [
        ("2001:db8::1", "2001:db8::1"),
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("::1", "::1"),
        ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        ("::ffff:203.0.113.7", "::ffff:203.0.113.7"),  # as getpeername() reports it
    ],
)
def test_v1_tcp6(src: str, expected: str) -> None:
    result = parsed(f"PROXY TCP6 {src} 2001:db8::2 40000 8000\r\n".encode() + HTTP)
    assert result.source == (expected, 40000)
    assert result.destination == ("2001:db8::2", 8000)
    assert (result.rest, result.version) == (HTTP, 1)


def test_v1_tcp6_longest_line() -> None:
    full = ":".join(["ffff"] * 8)
    line = f"PROXY TCP6 {full} {full} 65535 65535\r\n".encode()
    assert len(line) == 104  # PP §2.1
    assert parsed(line).destination == (full, 65535)


@pytest.mark.parametrize(
    "line",
    [
        b"PROXY UNKNOWN\r\n",
        b"PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY UNKNOWN anything at all, ignored\r\n",
        # PP §2.1: the worst case, 107 bytes with the CRLF.
        b"PROXY UNKNOWN " + b" ".join([b":".join([b"ffff"] * 8)] * 2) + b" 65535 65535\r\n",
    ],
)
def test_v1_unknown_means_the_real_endpoints(line: bytes) -> None:
    assert len(line) <= V1_MAX_BYTES
    assert parsed(line + HTTP) == ProxyResult(source=None, destination=None, rest=HTTP, version=1)


def test_v1_exactly_107_bytes_is_accepted_108_is_not() -> None:
    line = b"PROXY UNKNOWN " + b"x" * (V1_MAX_BYTES - 16) + b"\r\n"
    assert len(line) == V1_MAX_BYTES
    assert parsed(line).source is None
    longer = b"PROXY UNKNOWN " + b"x" * (V1_MAX_BYTES - 15) + b"\r\n"
    assert "no CRLF within 107 bytes" in refused(longer)


def test_v1_without_crlf_is_refused_at_byte_107_not_later() -> None:
    parser = ProxyHeaderParser()
    assert parser.feed(b"PROXY TCP4 " + b"1" * (V1_MAX_BYTES - 12)) is None  # 106 bytes
    with pytest.raises(ProxyHeaderError, match="no CRLF within 107 bytes"):
        parser.feed(b"1")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", "not a PROXY protocol header"),
        (b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "not a PROXY protocol header"),
        (b"PROXY\r\n", "not a PROXY protocol header"),
        (b"PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n", "not a PROXY protocol header"),
        (b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "unsupported PROXY v1 protocol b''"),
        (b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", "unsupported PROXY v1 protocol b'tcp4'"),
        (b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", "unsupported PROXY v1 protocol"),
        (b"PROXY UNKNOWNX\r\n", "unsupported PROXY v1 protocol b'UNKNOWNX'"),
        (b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", "with single spaces, got 5 fields"),
        (b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", "with single spaces, got 5 fields"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n", "with single spaces, got 5 fields"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "with single spaces, got 5 fields"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "got 3 fields"),
        (b"PROXY TCP4\r\n", "got 0 fields"),
        (b"PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n", "got 3 fields"),
        (b"PROXY TCP4 ::1 ::2 1 2\r\n", "TCP4 address b'::1' is not a canonical IPv4"),
        (b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", "TCP6 address b'1.2.3.4' is not an IPv6"),
        (b"PROXY TCP6 ::1 5.6.7.8 1 2\r\n", "TCP6 address b'5.6.7.8' is not an IPv6"),
        (b"PROXY TCP4 192.168.01.1 5.6.7.8 1 2\r\n", "b'192.168.01.1' is not a canonical IPv4"),
        (b"PROXY TCP4 256.1.1.1 5.6.7.8 1 2\r\n", "b'256.1.1.1' is not a canonical IPv4"),
        (b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", "b'1.2.3' is not a canonical IPv4"),
        (b"PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n", "is not a canonical IPv4"),
        (b"PROXY TCP4 localhost 5.6.7.8 1 2\r\n", "b'localhost' is not a canonical IPv4"),
        (b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", "b'fe80::1%eth0' is not an IPv6"),
        (b"PROXY TCP6 1::2::3 ::1 1 2\r\n", "b'1::2::3' is not an IPv6"),
        (b"PROXY TCP6 12345::1 ::1 1 2\r\n", "b'12345::1' is not an IPv6"),
        (b"PROXY TCP6 1:2:3:4:5:6:7 ::1 1 2\r\n", "is not an IPv6"),
        (b"PROXY TCP6 ::ffff:01.2.3.4 ::1 1 2\r\n", "is not an IPv6"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "port b'65536' is not a number 0-65535"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n", "port b'99999'"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n", "port b'080' is not a number"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n", "port b'00' is not a number"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "port b'-1'"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", "port b'+1'"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "bare LF instead of CRLF"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", "CR not followed by LF"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rGET", "CR not followed by LF"),
        (b"PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n", "CR not followed by LF"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n\r\n", "bare LF"),
        (b"PROXY TCP4 1.2.3.\xc4\xb4 5.6.7.8 1 2\r\n", "is not a canonical IPv4"),
        (b"PROXY TCP4 " + b"1" * 200 + b"\r\n", "no CRLF within 107 bytes"),
    ],
)
def test_v1_malformed(data: bytes, message: str) -> None:
    assert message in refused(data + HTTP)


def test_plain_http_is_refused_at_its_first_byte() -> None:
    with pytest.raises(ProxyHeaderError, match="not a PROXY protocol header"):
        ProxyHeaderParser().feed(b"G")


def test_v1_incomplete_line_waits() -> None:
    assert outcome(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r") is None
    assert outcome(b"PROXY UNKNOWN") is None
    assert outcome(b"PRO") is None


# --- version 2 (PP §2.2) ----------------------------------------------------------


def test_v2_as_haproxy_sends_it() -> None:
    # TCP over IPv4, 172.19.0.1:42578 -> 172.19.0.3:80, then the request.
    data = bytes.fromhex("0d0a0d0a000d0a515549540a2111000cac130001ac130003a6520050") + HTTP
    assert parsed(data) == ProxyResult(
        source=("172.19.0.1", 42578), destination=("172.19.0.3", 80), rest=HTTP, version=2
    )


def test_v2_proxy_ipv4_with_tlvs() -> None:
    block = (
        ipv4_block("203.0.113.7", "10.0.0.1", 51000, 8000)
        + tlv(0x01, b"http/1.1")  # PP2_TYPE_ALPN
        + tlv(0x02, b"example.com")  # PP2_TYPE_AUTHORITY
        + tlv(0x04, b"")  # PP2_TYPE_NOOP, empty
        + tlv(0x05, b"u" * 128)  # PP2_TYPE_UNIQUE_ID
        + tlv(0xE0, b"custom")
    )
    assert parsed(v2(block) + HTTP) == ProxyResult(
        source=("203.0.113.7", 51000), destination=("10.0.0.1", 8000), rest=HTTP, version=2
    )


def test_v2_proxy_ipv6_with_tlvs() -> None:
    block = ipv6_block("2001:db8::7", "2001:db8::1", 443, 8443) + tlv(0x02, b"example.org")
    result = parsed(v2(block, family=0x21) + HTTP)
    assert result.source == ("2001:db8::7", 443)
    assert result.destination == ("2001:db8::1", 8443)
    assert (result.rest, result.version) == (HTTP, 2)


def test_v2_ipv4_mapped_ipv6_reads_like_getpeername() -> None:
    block = ipv6_block("::ffff:192.0.2.1", "::1", 1, 2)
    assert parsed(v2(block, family=0x21)).source == ("::ffff:192.0.2.1", 1)


def test_v2_ports_are_network_order() -> None:
    result = parsed(v2(ipv4_block("1.2.3.4", "5.6.7.8", 0, 65535)))
    assert (result.source, result.destination) == (("1.2.3.4", 0), ("5.6.7.8", 65535))


@pytest.mark.parametrize(
    "header",
    [
        v2(command=0, family=0x00),  # haproxy's health checks
        v2(tlv(0x05, b"id"), command=0, family=0x00),
        v2(ipv4_block("1.2.3.4", "5.6.7.8", 1, 2), command=0, family=0x11),
        v2(b"", command=0, family=0x11),  # PP §2.2: LOCAL ignores the block
        v2(b"\xff" * 5, command=0, family=0x21),
        v2(b"", command=0, family=0x12),  # LOCAL over a datagram family: ignored too
        v2(b"", command=1, family=0x00),  # PROXY UNSPEC: use the real endpoints
        v2(b"\x01\x02\x03", command=1, family=0x10),  # INET, transport UNSPEC: ignored
        v2(b"\x01\x02\x03", command=1, family=0x01),  # UNSPEC family, STREAM: ignored
        v2(b"/tmp/a".ljust(108, b"\0") + b"/tmp/b".ljust(108, b"\0"), family=0x31),
    ],
)
def test_v2_local_and_unspecified_mean_the_real_endpoints(header: bytes) -> None:
    assert parsed(header + HTTP) == ProxyResult(source=None, destination=None, rest=HTTP, version=2)


def test_v2_crc32c_is_checked() -> None:
    header = v2(ipv4_block("1.2.3.4", "5.6.7.8", 1, 2) + tlv(0x02, b"example.com"))
    assert parsed(with_crc32c(header) + HTTP).source == ("1.2.3.4", 1)
    assert "fails its CRC32C checksum" in refused(with_crc32c(header, corrupt=True) + HTTP)
    local = with_crc32c(v2(command=0, family=0x00))
    assert parsed(local).source is None


def test_crc32c_known_answer() -> None:
    assert proxy_protocol._crc32c(b"123456789") == 0xE3069283  # RFC 3720 B.4 check value


def test_v2_tlvs_up_to_the_limit_are_accepted_one_byte_more_is_not() -> None:
    address = ipv4_block("1.2.3.4", "5.6.7.8", 1, 2)
    fits = v2(address + tlv(0xE1, b"x" * (MAX_TLV_BYTES - 3)))
    assert parsed(fits).source == ("1.2.3.4", 1)
    too_big = v2(address + tlv(0xE1, b"x" * (MAX_TLV_BYTES - 2)))
    assert "more than the 4108 accepted" in refused(too_big)
    assert "more than the 112 accepted" in refused(fits, max_tlv_bytes=100)


def test_v2_oversized_length_is_refused_from_the_fixed_part_alone() -> None:
    parser = ProxyHeaderParser()
    with pytest.raises(ProxyHeaderError, match="announces 65535 bytes"):
        parser.feed(v2(length=0xFFFF))
    with pytest.raises(ProxyHeaderError, match="announces 65535 bytes"):
        parser.feed(b"more")  # the error is kept


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\r\n\r\n\x00\r\nQUIX\n" + b"\x21\x11\x00\x00", "bad v2 signature"),
        (b"\r\nGET / HTTP/1.1\r\n", "bad v2 signature"),
        (b"\r\n\r\n\r\n", "bad v2 signature"),
        (v2(version=1), "unsupported PROXY protocol version 1 (expected 2)"),
        (v2(version=3), "unsupported PROXY protocol version 3"),
        (v2(version=0), "unsupported PROXY protocol version 0"),
        (v2(command=2), "unknown PROXY v2 command 0x2"),
        (v2(command=0xF), "unknown PROXY v2 command 0xf"),
        (v2(family=0x41), "invalid PROXY v2 address family/transport byte 0x41"),
        (v2(family=0x13), "invalid PROXY v2 address family/transport byte 0x13"),
        (v2(command=0, family=0xFF), "invalid PROXY v2 address family/transport byte 0xff"),
        (v2(ipv4_block("1.2.3.4", "5.6.7.8", 1, 2), family=0x12), "datagram (UDP)"),
        (v2(bytes(36), family=0x22), "datagram (UDP)"),
        (v2(bytes(8), family=0x11), "block of 8 bytes is shorter than the 12 bytes"),
        (v2(bytes(12), family=0x21), "block of 12 bytes is shorter than the 36 bytes"),
        (v2(bytes(215), family=0x31), "block of 215 bytes is shorter than the 216 bytes"),
        (v2(bytes(12) + b"\x01", family=0x11), "ends inside a TLV's type and length"),
        (v2(bytes(12) + b"\x01\x00", family=0x11), "ends inside a TLV's type and length"),
        (v2(bytes(12) + b"\x02\x00\x05abcd", family=0x11), "TLV 0x02 runs past the end"),
        (v2(bytes(12) + tlv(0x01, b"h2") + b"\x05", family=0x11), "ends inside a TLV"),
        (v2(tlv(0x04, b"") + b"\x04\x00", command=0, family=0x00), "ends inside a TLV"),
        (v2(bytes(12) + tlv(0x03, b"abc"), family=0x11), "CRC32C TLV has 3 bytes instead of 4"),
        (v2(length=MAX_TLV_BYTES + 13, family=0x11), "more than the 4108 accepted"),
        (v2(length=MAX_TLV_BYTES + 1, command=0, family=0x00), "more than the 4096 accepted"),
    ],
)
def test_v2_malformed(data: bytes, message: str) -> None:
    assert message in refused(data + HTTP)


def test_v2_truncated_header_waits_for_the_rest() -> None:
    header = v2(ipv4_block("1.2.3.4", "5.6.7.8", 1, 2) + tlv(0x02, b"example.com"))
    for size in range(len(header)):
        assert outcome(header[:size]) is None, size


# --- the parser object ----------------------------------------------------------------


def test_errors_are_protocol_errors_answered_with_400() -> None:
    with pytest.raises(ProtocolError) as info:
        ProxyHeaderParser().feed(b"GET / HTTP/1.1\r\n")
    assert info.value.status == 400
    assert isinstance(info.value, ProxyHeaderError)


def test_an_error_is_raised_again_on_later_feeds() -> None:
    parser = ProxyHeaderParser()
    with pytest.raises(ProxyHeaderError):
        parser.feed(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 02\r\n")
    with pytest.raises(ProxyHeaderError, match="port b'02'"):
        parser.feed(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n")


def test_feeding_after_the_result_is_a_programming_error() -> None:
    parser = ProxyHeaderParser()
    assert parser.feed(b"PROXY UNKNOWN\r\n") is not None
    with pytest.raises(RuntimeError, match="already parsed"):
        parser.feed(HTTP)


def test_empty_feeds_change_nothing() -> None:
    parser = ProxyHeaderParser()
    assert parser.feed(b"") is None
    assert parser.feed(b"PROXY UNKNOWN\r") is None
    assert parser.feed(b"") is None
    assert parser.feed(b"\n") == ProxyResult(source=None, destination=None, rest=b"", version=1)


def test_rest_is_everything_after_the_header_in_the_same_read() -> None:
    big = HTTP * 1000
    assert parsed(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n" + big).rest == big
    assert parsed(v2(command=0, family=0x00) + big).rest == big


def test_exports() -> None:
    assert sorted(proxy_protocol.__all__) == sorted(
        [
            "MAX_TLV_BYTES",
            "V1_MAX_BYTES",
            "V2_SIGNATURE",
            "ProxyHeaderError",
            "ProxyHeaderParser",
            "ProxyResult",
        ]
    )
    for name in proxy_protocol.__all__:
        assert hasattr(proxy_protocol, name)


# --- properties ---------------------------------------------------------------------


@st.composite
def any_split(draw: st.DrawFn, data: bytes) -> list[bytes]:
    if len(data) < 2:
        return [data]
    points = draw(st.lists(st.integers(1, len(data) - 1), max_size=min(20, len(data) - 1)))
    cuts = sorted(set(points))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


_PREFIXES = st.sampled_from(
    [b"", b"PROXY ", b"PROXY TCP4 ", b"PROXY TCP6 ", b"PROXY UNKNOWN", V2_SIGNATURE]
    + [V2_SIGNATURE + bytes([0x20 | cmd, fam]) for cmd in (0, 1) for fam in (0, 0x11, 0x21, 0x31)]
)


@FAST
@given(prefix=_PREFIXES, tail=st.binary(max_size=300), data=st.data())
def test_arbitrary_bytes_only_ever_raise_proxy_header_error(
    prefix: bytes, tail: bytes, data: st.DataObject
) -> None:
    stream = prefix + tail
    whole = run([stream])  # anything but ProxyHeaderError propagates and fails the test
    assert run(data.draw(any_split(stream))) == whole
    if whole is None:  # still waiting: only ever within the bounds
        assert len(stream) < 16 + 216 + MAX_TLV_BYTES
        if stream.startswith(b"P"):
            assert len(stream) < V1_MAX_BYTES


_IPV4 = st.ip_addresses(v=4)
_IPV6 = st.ip_addresses(v=6)
_PORT = st.integers(0, 65535)


@FAST
@given(
    ipv6=st.booleans(),
    addresses=st.data(),
    sport=_PORT,
    dport=_PORT,
    exploded=st.booleans(),
    rest=st.binary(max_size=50),
)
def test_valid_v1_lines_parse_back_at_any_split(
    ipv6: bool,
    addresses: st.DataObject,
    sport: int,
    dport: int,
    exploded: bool,
    rest: bytes,
) -> None:
    src, dst = (addresses.draw(_IPV6 if ipv6 else _IPV4) for _ in range(2))

    def text(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
        return ip.exploded if exploded and ipv6 else ip.compressed

    line = f"PROXY TCP{6 if ipv6 else 4} {text(src)} {text(dst)} {sport} {dport}\r\n"
    assert len(line) <= V1_MAX_BYTES
    stream = line.encode() + rest
    result = run(addresses.draw(any_split(stream)))
    assert isinstance(result, ProxyResult)
    assert result.source is not None and result.destination is not None
    assert ipaddress.ip_address(result.source[0]) == src
    assert ipaddress.ip_address(result.destination[0]) == dst
    assert (result.source[1], result.destination[1]) == (sport, dport)
    assert (result.rest, result.version) == (rest, 1)


@FAST
@given(
    ipv6=st.booleans(),
    addresses=st.data(),
    sport=_PORT,
    dport=_PORT,
    tlvs=st.lists(st.tuples(st.integers(0, 255).filter(lambda k: k != 3), st.binary(max_size=40))),
    crc=st.booleans(),
    rest=st.binary(max_size=50),
)
def test_valid_v2_headers_parse_back_at_any_split(
    ipv6: bool,
    addresses: st.DataObject,
    sport: int,
    dport: int,
    tlvs: list[tuple[int, bytes]],
    crc: bool,
    rest: bytes,
) -> None:
    src, dst = (addresses.draw(_IPV6 if ipv6 else _IPV4) for _ in range(2))
    block = src.packed + dst.packed + struct.pack("!HH", sport, dport)
    block += b"".join(tlv(kind, value) for kind, value in tlvs)
    header = v2(block, family=0x21 if ipv6 else 0x11)
    stream = (with_crc32c(header) if crc else header) + rest
    result = run(addresses.draw(any_split(stream)))
    assert isinstance(result, ProxyResult)
    assert result.source is not None and result.destination is not None
    assert ipaddress.ip_address(result.source[0]) == src
    assert ipaddress.ip_address(result.destination[0]) == dst
    assert (result.source[1], result.destination[1]) == (sport, dport)
    assert (result.rest, result.version) == (rest, 2)


# --- the two settings -------------------------------------------------------------


def test_settings_defaults() -> None:
    config = load_config(["app:app"], {}).config
    assert config.proxy_protocol is False
    assert config.proxy_allow_from == ("127.0.0.1", "::1")


def test_settings_from_cli_env_and_file(tmp_path: object) -> None:
    config = load_config(
        ["app:app", "--proxy-protocol", "--proxy-allow-from", "10.1.2.3/8, 2001:db8::/32"], {}
    ).config
    assert config.proxy_protocol is True
    assert config.proxy_allow_from == ("10.0.0.0/8", "2001:db8::/32")
    env = {"PORCH_PROXY_PROTOCOL": "yes", "PORCH_PROXY_ALLOW_FROM": "*"}
    config = load_config(["app:app"], env).config
    assert (config.proxy_protocol, config.proxy_allow_from) == (True, ("*",))
    config = load_config(["app:app", "--proxy-protocol", "--no-proxy-protocol"], {}).config
    assert config.proxy_protocol is False


@pytest.mark.parametrize("bad", ["10.0.0.300", "example.com", "10.0.0.0/33", "**"])
def test_settings_bad_peer_names_the_flag(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(["app:app", "--proxy-allow-from", bad], {})
    assert str(info.value).startswith(
        "--proxy-allow-from: expected an IP address, a network like 10.0.0.0/8, or *"
    )
