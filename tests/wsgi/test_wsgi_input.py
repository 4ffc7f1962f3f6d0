"""BufferedInput (in memory and spilled) and StreamingInput against io.BytesIO; EmptyInput."""

from __future__ import annotations

import io
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from porch.wsgi.input import EMPTY_INPUT, BufferedInput, EmptyInput, StreamingInput

BODY = b"first line\nsecond\n\nlast without newline"


def filled(body: bytes, *, memory_limit: int, chunk_bytes: int = 7) -> BufferedInput:
    stream = BufferedInput(memory_limit=memory_limit)
    for start in range(0, len(body), chunk_bytes):
        stream.feed(body[start : start + chunk_bytes])
    stream.finish()
    return stream


@pytest.fixture(params=[1 << 20, 10], ids=["memory", "spilled"])
def memory_limit(request: pytest.FixtureRequest) -> int:
    return int(request.param)


def test_spills_only_past_the_limit() -> None:
    exact = BufferedInput(memory_limit=10)
    exact.feed(b"12345")
    exact.feed(b"67890")
    assert not exact.spilled
    exact.feed(b"x")
    assert exact.spilled
    exact.feed(b"yz")
    exact.finish()
    assert exact.read() == b"1234567890xyz"
    assert exact.received_bytes == 13
    exact.close()


def test_spill_on_a_first_large_chunk() -> None:
    stream = BufferedInput(memory_limit=10)
    stream.feed(b"a" * 11)
    assert stream.spilled
    stream.finish()
    assert stream.read(None) == b"a" * 11


def test_read_methods(memory_limit: int) -> None:
    stream = filled(BODY, memory_limit=memory_limit)
    assert stream.spilled is (memory_limit == 10)
    assert stream.read(5) == b"first"
    assert stream.readline() == b" line\n"
    assert stream.readline(3) == b"sec"
    assert stream.readlines() == [b"ond\n", b"\n", b"last without newline"]
    assert stream.read() == b""
    assert stream.read(10) == b""
    assert stream.readline() == b""


def test_iteration(memory_limit: int) -> None:
    assert list(filled(BODY, memory_limit=memory_limit)) == io.BytesIO(BODY).readlines()


def test_readlines_hint(memory_limit: int) -> None:
    assert filled(BODY, memory_limit=memory_limit).readlines(3) == [b"first line\n"]


def test_empty_body(memory_limit: int) -> None:
    stream = filled(b"", memory_limit=memory_limit)
    assert stream.read() == b"" and stream.readline() == b"" and stream.readlines() == []
    assert list(stream) == []


def test_close_frees_the_temp_file() -> None:
    stream = filled(BODY, memory_limit=10)
    spill = stream._file
    assert spill is not None and not spill.closed
    stream.close()
    assert spill.closed
    with pytest.raises(ValueError):
        stream.read()
    stream.close()  # idempotent


def test_close_before_finish() -> None:
    stream = BufferedInput(memory_limit=10)
    stream.feed(b"x" * 20)
    spill = stream._file
    stream.close()
    assert spill is not None and spill.closed


def test_read_before_finish_is_a_driver_bug() -> None:
    stream = BufferedInput(memory_limit=100)
    stream.feed(b"partial")
    with pytest.raises(RuntimeError, match="before the request body was complete"):
        stream.read()


def test_feed_after_finish_is_a_driver_bug() -> None:
    stream = filled(b"x", memory_limit=100)
    with pytest.raises(RuntimeError):
        stream.feed(b"more")


def test_empty_input() -> None:
    assert isinstance(EMPTY_INPUT, EmptyInput)
    assert EMPTY_INPUT.read() == b"" and EMPTY_INPUT.read(5) == b""
    assert EMPTY_INPUT.read(None) == b""
    assert EMPTY_INPUT.readline() == b"" and EMPTY_INPUT.readline(3) == b""
    assert EMPTY_INPUT.readlines() == [] and EMPTY_INPUT.readlines(4) == []
    assert list(EMPTY_INPUT) == []
    EMPTY_INPUT.close()
    assert EMPTY_INPUT.read() == b""  # shared: close() must not break it


# -- property: any read pattern matches io.BytesIO --------------------------

OPERATIONS = st.one_of(
    st.tuples(st.just("read"), st.one_of(st.none(), st.integers(-2, 12))),
    st.tuples(st.just("readline"), st.one_of(st.none(), st.integers(-2, 12))),
    st.tuples(st.just("readlines"), st.one_of(st.none(), st.integers(-2, 12))),
    st.tuples(st.just("next"), st.none()),
)
BODIES = st.lists(st.sampled_from([b"a", b"bc", b"\n", b"\r\n", b"\xff", b"xyz\n"]), max_size=40)


@settings(max_examples=300)
@given(
    pieces=BODIES,
    splits=st.lists(st.integers(0, 200), max_size=8),
    memory_limit=st.integers(0, 64),
    operations=st.lists(OPERATIONS, max_size=12),
)
def test_reads_match_bytesio(
    pieces: list[bytes],
    splits: list[int],
    memory_limit: int,
    operations: list[tuple[str, int | None]],
) -> None:
    body = b"".join(pieces)
    stream = BufferedInput(memory_limit=memory_limit)
    cuts = sorted({0, len(body), *(cut for cut in splits if cut <= len(body))})
    for start, end in itertools.pairwise(cuts):
        stream.feed(body[start:end])
    stream.finish()
    assert stream.spilled is (len(body) > memory_limit)
    assert_reads_match_bytesio(stream, body, operations)


@settings(max_examples=300)
@given(
    pieces=BODIES,
    splits=st.lists(st.integers(0, 200), max_size=8),
    operations=st.lists(OPERATIONS, max_size=12),
)
def test_streaming_reads_match_bytesio(
    pieces: list[bytes], splits: list[int], operations: list[tuple[str, int | None]]
) -> None:
    body = b"".join(pieces)
    cuts = sorted({0, len(body), *(cut for cut in splits if cut <= len(body))})
    stream = streamed([body[start:end] for start, end in itertools.pairwise(cuts)])
    assert_reads_match_bytesio(stream, body, operations)


# -- StreamingInput: pulls only what a read needs ------------------------------------


class Source:
    """The server side of a streamed body: hands out ``pieces``, then ``end`` (b"" or raises)."""

    def __init__(self, pieces: list[bytes], end: Exception | None = None) -> None:
        self.pieces = list(pieces)
        self.end = end
        self.pulls = 0

    def pull(self) -> bytes:
        self.pulls += 1
        if self.pieces:
            return self.pieces.pop(0)
        if self.end is not None:
            raise self.end
        return b""


def streamed(pieces: list[bytes]) -> StreamingInput:
    return StreamingInput(pull=Source([piece for piece in pieces if piece]).pull)


def test_streaming_reads_pull_only_what_they_need() -> None:
    source = Source([b"hello ", b"wor", b"ld\nnext", b" line\n"])
    stream = StreamingInput(pull=source.pull)
    assert source.pulls == 0  # nothing is asked for before the app reads
    assert stream.read(5) == b"hello"
    assert source.pulls == 1
    assert stream.read(1) == b" "  # already pulled
    assert source.pulls == 1
    assert stream.read(4) == b"worl"  # read(n) waits for n bytes, as a buffered file does
    assert source.pulls == 3
    assert stream.readline() == b"d\n"
    assert source.pulls == 3
    assert stream.readline(4) == b"next"
    assert stream.readline() == b" line\n"
    assert source.pulls == 4
    assert stream.read() == b""
    assert source.pulls == 5
    assert stream.read() == b"" and stream.readline() == b""
    assert source.pulls == 5  # the end is remembered


def test_streaming_errors_reach_the_app_after_the_bytes_before_them() -> None:
    stream = StreamingInput(pull=Source([b"partial"], end=OSError("client gone")).pull)
    assert stream.read(7) == b"partial"
    with pytest.raises(OSError, match="client gone"):
        stream.read(1)
    with pytest.raises(OSError, match="client gone"):
        stream.read()  # and on every later read


def test_streaming_close() -> None:
    source = Source([b"abc", b"def"])
    stream = StreamingInput(pull=source.pull)
    assert stream.read(1) == b"a"
    stream.close()
    with pytest.raises(ValueError):
        stream.read()
    assert source.pulls == 1


def assert_reads_match_bytesio(
    stream: BufferedInput | StreamingInput, body: bytes, operations: list[tuple[str, int | None]]
) -> None:
    """Each operation on ``stream`` returns what it returns on a BytesIO of ``body``."""
    oracle = io.BytesIO(body)
    for name, argument in operations:
        if name == "next":
            assert next(iter(stream), None) == next(iter(oracle), None)
        else:
            assert getattr(stream, name)(argument) == getattr(oracle, name)(argument)
    assert stream.read() == oracle.read()
    stream.close()


@pytest.mark.parametrize("size", [2**40, 2**63 - 1])
def test_a_huge_read_size_reads_the_rest(memory_limit: int, size: int) -> None:
    # A file would allocate the size asked for before reading (MemoryError, OverflowError).
    stream = filled(BODY, memory_limit=memory_limit)
    assert stream.read(5) == BODY[:5]
    assert stream.read(size) == BODY[5:]
    assert stream.read(size) == b""
