"""``porch --compress`` as a real command serving examples/hello.py, checked with httpx."""

from __future__ import annotations

import json
import zlib

import httpx
import pytest
from tests.e2e.conftest import PorchProcess

pytestmark = pytest.mark.timeout(60)


def test_the_command_compresses_when_asked() -> None:
    args = ["examples/hello.py", "-b", "127.0.0.1:0", "--compress", "--compress-min-size", "200"]
    server = PorchProcess(args)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            gzipped = client.get("/environ", headers={"Accept-Encoding": "gzip"})
            assert gzipped.headers["content-encoding"] == "gzip"
            assert gzipped.headers["vary"] == "Accept-Encoding"
            assert json.loads(gzipped.content)["HTTP_ACCEPT_ENCODING"] == "gzip"

            plain = client.get("/environ", headers={"Accept-Encoding": "identity"})
            assert "content-encoding" not in plain.headers
            assert json.loads(plain.content)["HTTP_ACCEPT_ENCODING"] == "identity"
            assert plain.headers["content-length"] == str(len(plain.content))

            small = client.get("/", headers={"Accept-Encoding": "gzip"})  # under 200 bytes
            assert "content-encoding" not in small.headers
            assert small.content == b"Hello, World!"

            with client.stream(
                "GET", "/stream?n=300", headers={"Accept-Encoding": "gzip"}
            ) as streamed:
                assert streamed.headers["content-encoding"] == "gzip"
                assert streamed.headers["transfer-encoding"] == "chunked"
                wire = b"".join(streamed.iter_raw())
            expected = "".join(f"chunk {n}\n" for n in range(300)).encode()
            assert zlib.decompress(wire, wbits=31) == expected
    finally:
        assert server.stop() == 0
