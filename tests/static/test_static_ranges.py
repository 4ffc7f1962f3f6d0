"""Range requests (RFC 9110 §14): single ranges, 416, and the multi-range rule against abuse."""

from __future__ import annotations

import email.parser
import email.policy
from pathlib import Path

import pytest
from static_client import BIG, TEXT, Client, make_static

from porch.static.ranges import (
    COALESCE_GAP_BYTES,
    MAX_RANGES,
    MULTIPART_MAX_BYTES,
    plan_ranges,
)

SIZE = len(BIG)


def parts_of(body: bytes, content_type: str) -> list[tuple[str, str, bytes]]:
    """(Content-Type, Content-Range, data) of each part, checking the exact framing."""
    boundary = content_type.split("boundary=", 1)[1].encode()
    assert body.startswith(b"--" + boundary + b"\r\n")
    assert body.endswith(b"\r\n--" + boundary + b"--\r\n")
    inner = body[len(boundary) + 4 : -(len(boundary) + 8)]
    parts = []
    for raw in inner.split(b"\r\n--" + boundary + b"\r\n"):
        head, _, data = raw.partition(b"\r\n\r\n")
        fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n"))
        parts.append((fields[b"Content-Type"].decode(), fields[b"Content-Range"].decode(), data))
    # A standard MIME parser reads the same parts.
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    payloads = [part.get_payload(decode=True) for part in message.iter_parts()]
    assert payloads == [data for _, _, data in parts]
    return parts


@pytest.mark.parametrize(
    ("value", "first", "last"),
    [
        ("bytes=0-0", 0, 0),
        ("bytes=0-99", 0, 99),
        ("bytes=100-199", 100, 199),
        ("bytes=10000-", 10000, SIZE - 1),  # open-ended
        ("bytes=-100", SIZE - 100, SIZE - 1),  # suffix
        ("bytes=-999999", 0, SIZE - 1),  # suffix longer than the file
        ("bytes=10000-999999", 10000, SIZE - 1),  # last clamped
        ("bytes=0-", 0, SIZE - 1),
        ("BYTES=5-9", 5, 9),  # range units are case-insensitive
        ("bytes= 5-9 ", 5, 9),
        ("bytes=5-9,", 5, 9),  # empty list elements do not count
        ("bytes=99999999999999999999999-,5-9", 5, 9),  # huge first: unsatisfiable, dropped
        ("bytes=5-99999999999999999999999999999", 5, SIZE - 1),
    ],
)
def test_single_range_is_206(client: Client, value: str, first: int, last: int) -> None:
    answer = client.get("/static/big.bin", ("Range", value))
    assert answer.status == 206
    assert answer["Content-Range"] == f"bytes {first}-{last}/{SIZE}"
    assert answer.body == BIG[first : last + 1]
    assert answer.sent_by_sendfile
    assert answer["Content-Type"] == "application/octet-stream"
    assert answer["Accept-Ranges"] == "bytes"
    assert "ETag" in answer.headers or "etag" in answer.headers


@pytest.mark.parametrize(
    "value",
    ["bytes=10240-", "bytes=20000-30000", "bytes=-0", "bytes=10240-10240,99999-"],
)
def test_unsatisfiable_range_is_416(client: Client, value: str) -> None:
    answer = client.get("/static/big.bin", ("Range", value))
    assert answer.status == 416
    assert answer["Content-Range"] == f"bytes */{SIZE}"
    assert answer.body.startswith(b"416 ")
    assert not answer.sent_by_sendfile


@pytest.mark.parametrize(
    "value",
    [
        "bytes=5-4",  # first > last: invalid
        "bytes=a-b",
        "bytes=-",
        "bytes=",
        "bytes=1-2-3",
        "bytes=--5",
        "items=0-5",
        "bytes 0-5",
        "0-5",
        "",
        "bytes=0-5,x",
        "bytes=+1-5",
    ],
)
def test_invalid_range_is_ignored(client: Client, value: str) -> None:
    answer = client.get("/static/big.bin", ("Range", value))
    assert answer.status == 200
    assert answer.body == BIG
    assert answer.get("Content-Range") is None


def test_range_given_twice_is_ignored(client: Client) -> None:
    answer = client.get("/static/big.bin", ("Range", "bytes=0-1"), ("Range", "bytes=2-3"))
    assert (answer.status, answer.body) == (200, BIG)


def test_head_ignores_range(client: Client) -> None:
    # RFC 9110 §14.2: range handling is defined for GET only.
    answer = client.head("/static/big.bin", ("Range", "bytes=0-9"))
    assert answer.status == 200
    assert answer["Content-Length"] == str(SIZE)


def test_range_on_an_empty_file_is_ignored(client: Client) -> None:
    for value in ("bytes=0-", "bytes=-5", "bytes=0-0"):
        answer = client.get("/static/zero.txt", ("Range", value))
        assert (answer.status, answer.body) == (200, b"")


# --- several ranges: the rule ------------------------------------------------------------------


def test_disjoint_ascending_ranges_are_multipart(client: Client) -> None:
    answer = client.get("/static/big.bin", ("Range", "bytes=0-99,1000-1099,-50"))
    assert answer.status == 206
    content_type = answer["Content-Type"]
    assert content_type.startswith("multipart/byteranges; boundary=")
    assert answer.get("Content-Range") is None
    assert not answer.sent_by_sendfile
    assert parts_of(answer.body, content_type) == [
        ("application/octet-stream", f"bytes 0-99/{SIZE}", BIG[0:100]),
        ("application/octet-stream", f"bytes 1000-1099/{SIZE}", BIG[1000:1100]),
        ("application/octet-stream", f"bytes {SIZE - 50}-{SIZE - 1}/{SIZE}", BIG[-50:]),
    ]
    assert len(answer.body) <= SIZE


def test_boundary_is_fresh_per_response(client: Client) -> None:
    first = client.get("/static/big.bin", ("Range", "bytes=0-9,5000-5009"))["Content-Type"]
    second = client.get("/static/big.bin", ("Range", "bytes=0-9,5000-5009"))["Content-Type"]
    assert first != second


def test_parts_carry_the_files_media_type(client: Client, site: Path) -> None:
    (site / "long.txt").write_bytes(TEXT * 100)
    answer = client.get("/static/long.txt", ("Range", "bytes=0-4,1000-1004"))
    parts = parts_of(answer.body, answer["Content-Type"])
    assert [part[0] for part in parts] == ["text/plain; charset=utf-8"] * 2


def test_close_ranges_are_coalesced_into_one(client: Client) -> None:
    gap = COALESCE_GAP_BYTES - 1
    answer = client.get("/static/big.bin", ("Range", f"bytes=0-9,{10 + gap}-{19 + gap}"))
    assert answer.status == 206
    assert answer["Content-Range"] == f"bytes 0-{19 + gap}/{SIZE}"
    assert answer.body == BIG[: 20 + gap]
    adjacent = client.get("/static/big.bin", ("Range", "bytes=0-9,10-19"))
    assert adjacent["Content-Range"] == f"bytes 0-19/{SIZE}"


@pytest.mark.parametrize(
    "value",
    [
        "bytes=0-99,50-149",  # overlapping
        "bytes=0-99,99-199",  # sharing a byte
        "bytes=1000-1099,0-99",  # descending
        "bytes=0-,0-",  # the classic amplification request
        "bytes=-100,0-99",  # a suffix first, then the start
        "bytes=" + ",".join(f"{i * 200}-{i * 200 + 9}" for i in range(MAX_RANGES + 1)),
        "bytes=" + ",".join(["0-0"] * 1000),
    ],
)
def test_abusive_multi_ranges_get_the_whole_file_once(client: Client, value: str) -> None:
    answer = client.get("/static/big.bin", ("Range", value))
    assert answer.status == 200
    assert answer.body == BIG
    assert answer.sent_by_sendfile


def test_max_ranges_disjoint_ranges_are_served(client: Client) -> None:
    value = "bytes=" + ",".join(f"{i * 600}-{i * 600 + 99}" for i in range(MAX_RANGES))
    answer = client.get("/static/big.bin", ("Range", value))
    assert answer.status == 206
    assert len(parts_of(answer.body, answer["Content-Type"])) == MAX_RANGES


def test_multipart_never_larger_than_the_file(client: Client, site: Path) -> None:
    # Many tiny ranges of a small file: the part headers would outweigh the file.
    (site / "small.bin").write_bytes(bytes(1000))
    value = "bytes=" + ",".join(f"{i * 100}-{i * 100}" for i in range(10))
    answer = client.get("/static/small.bin", ("Range", value))
    assert answer.status == 200
    assert answer.body == bytes(1000)


def test_multipart_is_bounded_in_memory(site: Path) -> None:
    (site / "huge.bin").write_bytes(bytes(3 * MULTIPART_MAX_BYTES))
    client = Client(make_static(site))
    value = f"bytes=0-{MULTIPART_MAX_BYTES},{2 * MULTIPART_MAX_BYTES}-{2 * MULTIPART_MAX_BYTES + 9}"
    response = client.raw("/static/huge.bin", ("Range", value))
    assert response is not None
    try:
        assert response.status == 200
        assert response.file is not None and response.body == b""  # sendfile, not memory
    finally:
        response.close()


def test_deployment_docs_state_when_multipart_is_sent() -> None:
    # docs/deployment.md promises rule 5 as the code keeps it: the cap, and no
    # multipart for a precompressed variant.
    docs = (Path(__file__).resolve().parents[2] / "docs" / "deployment.md").read_text()
    section = " ".join(docs.partition("## Static files")[2].partition("\n## ")[0].split())
    assert f"at most {MULTIPART_MAX_BYTES // 2**20} MiB" in section
    assert "never for a precompressed variant" in section
    assert f"at most {MAX_RANGES}" in section


def test_precompressed_variant_gets_no_multipart(client: Client, site: Path) -> None:
    (site / "big.bin.gz").write_bytes(BIG[::-1])
    gz = ("Accept-Encoding", "gzip")
    answer = client.get("/static/big.bin", gz, ("Range", "bytes=0-9,5000-5009"))
    assert (answer.status, answer.body, answer["Content-Encoding"]) == (200, BIG[::-1], "gzip")
    single = client.get("/static/big.bin", gz, ("Range", "bytes=0-9"))
    assert (single.status, single.body) == (206, BIG[::-1][:10])  # a range of the gzip bytes
    assert single["Content-Encoding"] == "gzip"


def test_response_bytes_never_exceed_the_file(client: Client) -> None:
    # Whatever the Range field, the body is at most the file's size (plus nothing).
    values = [
        "bytes=0-,0-,0-,0-",
        "bytes=0-1,3-4,6-7,9-10,12-13",
        "bytes=" + ",".join(f"{i}-{i}" for i in range(0, 2000, 90)),
        "bytes=" + ",".join(f"-{n}" for n in range(1, 17)),
        "bytes=0-5000,5001-10239",
    ]
    for value in values:
        assert len(client.get("/static/big.bin", ("Range", value)).body) <= SIZE, value


# --- the pure planner -----------------------------------------------------------------------------


def test_plan_ranges() -> None:
    assert plan_ranges("bytes=0-9", 100) == ((0, 9),)
    assert plan_ranges("bytes=200-", 100) == ()
    assert plan_ranges("bytes=0-9", 0) is None
    assert plan_ranges("bytes=0-9,200-300", 100) == ((0, 9),)  # unsatisfiable one dropped
    assert plan_ranges("bytes=0-9,95-", 1000) == ((0, 9), (95, 999))
    assert plan_ranges("bytes=0-9,5-", 1000) is None
