"""FileWrapper: block iteration (fallback path), close, and the sendfile probe."""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator

import pytest

from porch.wsgi.file_wrapper import FileWrapper


@pytest.fixture
def regular_file() -> Iterator[io.BufferedRandom]:
    with tempfile.TemporaryFile() as handle:
        handle.write(b"x" * 20_000)
        handle.seek(0)
        yield handle


def test_iterates_in_blocks() -> None:
    wrapper = FileWrapper(io.BytesIO(b"a" * 20_000), 8192)
    assert [len(block) for block in wrapper] == [8192, 8192, 3616]


def test_default_block_size_and_attributes() -> None:
    filelike = io.BytesIO(b"abc")
    wrapper = FileWrapper(filelike)
    assert wrapper.filelike is filelike and wrapper.block_size == 8192
    assert list(wrapper) == [b"abc"]


def test_iterates_from_the_current_position() -> None:
    filelike = io.BytesIO(b"0123456789")
    filelike.seek(4)
    assert b"".join(FileWrapper(filelike, 3)) == b"456789"


def test_empty_file() -> None:
    assert list(FileWrapper(io.BytesIO())) == []


def test_close_closes_the_file() -> None:
    filelike = io.BytesIO(b"abc")
    FileWrapper(filelike).close()
    assert filelike.closed


def test_close_without_close_method() -> None:
    class ReadOnly:
        def read(self, size: int) -> bytes:
            return b""

    FileWrapper(ReadOnly()).close()


def test_fileno_of_a_regular_file(regular_file: io.BufferedRandom) -> None:
    assert FileWrapper(regular_file).fileno_or_none() == regular_file.fileno()


def test_no_fileno_for_memory_files() -> None:
    assert FileWrapper(io.BytesIO(b"x")).fileno_or_none() is None


def test_no_fileno_without_the_method() -> None:
    assert FileWrapper(object()).fileno_or_none() is None


def test_no_fileno_for_a_closed_file(regular_file: io.BufferedRandom) -> None:
    wrapper = FileWrapper(regular_file)
    wrapper.close()
    assert wrapper.fileno_or_none() is None


def test_no_fileno_for_a_pipe() -> None:
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, "rb") as reader, os.fdopen(write_fd, "wb"):
        assert FileWrapper(reader).fileno_or_none() is None


def test_no_fileno_for_a_directory(tmp_path: object) -> None:
    fd = os.open(str(tmp_path), os.O_RDONLY)
    try:

        class DirectoryHandle:
            def fileno(self) -> int:
                return fd

        assert FileWrapper(DirectoryHandle()).fileno_or_none() is None
    finally:
        os.close(fd)


def test_sendfile_source_starts_at_the_logical_position(regular_file: io.BufferedRandom) -> None:
    with open(regular_file.fileno(), "rb", closefd=False) as reader:
        assert reader.read(10) == b"x" * 10  # the buffer read ahead of position 10
        assert os.lseek(reader.fileno(), 0, os.SEEK_CUR) > 10
        assert FileWrapper(reader).sendfile_source() == (reader.fileno(), 10, 19_990)


def test_sendfile_source_at_end_of_file(regular_file: io.BufferedRandom) -> None:
    regular_file.seek(0, os.SEEK_END)
    assert FileWrapper(regular_file).sendfile_source() == (regular_file.fileno(), 20_000, 0)


def test_no_sendfile_source_for_memory_files() -> None:
    assert FileWrapper(io.BytesIO(b"x")).sendfile_source() is None


def test_no_sendfile_source_without_tell(regular_file: io.BufferedRandom) -> None:
    class NoTell:
        def fileno(self) -> int:
            return regular_file.fileno()

    assert FileWrapper(NoTell()).sendfile_source() is None
