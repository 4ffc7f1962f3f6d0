"""Precompressed siblings chosen by Accept-Encoding q-values, Vary, and media types."""

from __future__ import annotations

from pathlib import Path

import pytest
from static_client import Client

from porch.edge.codings import choose_coding as compression_choice
from porch.static.negotiation import accepted_codings, choose_coding, media_type

PLAIN = b"console.log('plain');\n" * 20
BROTLI = b"BR-BYTES"
ZSTD = b"ZSTD-BYTES"
GZIP = b"GZIP-BYTES"
BODIES = {None: PLAIN, "br": BROTLI, "zstd": ZSTD, "gzip": GZIP}


@pytest.fixture
def app_js(site: Path) -> Path:
    path = site / "app.js"
    path.write_bytes(PLAIN)
    (site / "app.js.br").write_bytes(BROTLI)
    (site / "app.js.zst").write_bytes(ZSTD)
    (site / "app.js.gz").write_bytes(GZIP)
    return path


@pytest.mark.parametrize(
    ("accept", "coding"),
    [
        ("gzip, deflate, br, zstd", "br"),  # a browser: ties go to br
        ("gzip, deflate, br", "br"),
        ("gzip, zstd", "zstd"),
        ("gzip", "gzip"),
        ("x-gzip", "gzip"),
        ("GZIP", "gzip"),
        ("br;q=0.5, gzip;q=0.8", "gzip"),
        ("br;q=0.8, gzip;q=0.8, zstd;q=0.9", "zstd"),
        ("br;q=0, gzip", "gzip"),  # q=0: not acceptable
        ("br;q=0, gzip;q=0, zstd;q=0", None),
        ("*", "br"),
        ("*;q=0.5, gzip", "gzip"),
        ("*;q=0", None),
        ("br;q=0, *", "zstd"),
        ("*;q=0.9, br;q=0.5, zstd;q=0.5, gzip;q=0.5", None),  # * ranks identity at 0.9
        ("*;q=0.9, identity;q=0.1, br;q=0.5, zstd;q=0.5, gzip;q=0.5", "br"),
        ("identity", None),
        ("identity;q=1, gzip;q=0.5", None),  # identity listed higher wins
        ("identity;q=0.5, gzip", "gzip"),
        ("gzip;q=0.5", "gzip"),  # identity unlisted has no weight of its own
        ("deflate", None),
        ("", None),
        ("br;q=2, gzip", "gzip"),  # an invalid qvalue drops that member
        ("br;q=abc, gzip", "gzip"),
        ("br;q=0.0001, gzip", "gzip"),
        ("br ; q=0.9 , gzip ; q=0.1", "br"),
        ("gzip;level=1;q=0.3", "gzip"),
    ],
)
def test_coding_is_chosen_by_q_values(
    client: Client, app_js: Path, accept: str, coding: str | None
) -> None:
    answer = client.get("/static/app.js", ("Accept-Encoding", accept))
    assert answer.status == 200
    assert answer.get("Content-Encoding") == coding
    assert answer.body == BODIES[coding]
    assert answer["Content-Length"] == str(len(BODIES[coding]))
    assert answer["Content-Type"] == "text/javascript; charset=utf-8"  # the original's type
    assert answer["Vary"] == "Accept-Encoding"


def test_star_ranks_the_plain_file_as_compression_does(client: Client, site: Path) -> None:
    # RFC 9110 §12.5.3: "*" covers identity unless it is named, so identity (0.9) wins.
    (site / "app.css").write_bytes(b"plain css")
    (site / "app.css.br").write_bytes(b"BR")
    accept = "*;q=0.9, br;q=0.5, gzip;q=0.5"
    answer = client.get("/static/app.css", ("Accept-Encoding", accept))
    assert (answer.body, answer.get("Content-Encoding")) == (b"plain css", None)
    assert answer["Vary"] == "Accept-Encoding"
    assert compression_choice(accept, ("br", "gzip")) is None  # --compress: identity too
    assert choose_coding is compression_choice  # one implementation for both


def test_no_accept_encoding_gets_the_plain_file_with_vary(client: Client, app_js: Path) -> None:
    answer = client.get("/static/app.js")
    assert answer.body == PLAIN
    assert answer.get("Content-Encoding") is None
    assert answer["Vary"] == "Accept-Encoding"


def test_accept_encoding_split_over_fields(client: Client, app_js: Path) -> None:
    answer = client.get(
        "/static/app.js", ("Accept-Encoding", "br;q=0"), ("Accept-Encoding", "gzip")
    )
    assert answer["Content-Encoding"] == "gzip"


def test_only_existing_siblings_are_offered(client: Client, site: Path) -> None:
    (site / "only.css").write_bytes(b"plain")
    (site / "only.css.gz").write_bytes(b"gz")
    answer = client.get("/static/only.css", ("Accept-Encoding", "br, zstd"))
    assert (answer.body, answer.get("Content-Encoding")) == (b"plain", None)
    assert answer["Vary"] == "Accept-Encoding"
    assert client.get("/static/only.css", ("Accept-Encoding", "br, gzip")).body == b"gz"


def test_no_vary_without_siblings(client: Client) -> None:
    answer = client.get("/static/hello.txt", ("Accept-Encoding", "gzip, br"))
    assert answer.get("Vary") is None
    assert answer.get("Content-Encoding") is None


def test_each_variant_has_its_own_etag(client: Client, app_js: Path) -> None:
    tags = {
        client.get("/static/app.js", ("Accept-Encoding", accept))["ETag"]
        for accept in ("identity", "br", "zstd", "gzip")
    }
    assert len(tags) == 4
    br_tag = client.get("/static/app.js", ("Accept-Encoding", "br"))["ETag"]
    # The brotli tag does not validate the gzip variant, and vice versa.
    gzip = ("Accept-Encoding", "gzip")
    assert client.get("/static/app.js", gzip, ("If-None-Match", br_tag)).status == 200
    not_modified = client.get(
        "/static/app.js", ("Accept-Encoding", "br"), ("If-None-Match", br_tag)
    )
    assert not_modified.status == 304
    assert not_modified["Vary"] == "Accept-Encoding"


def test_sibling_without_the_original_is_not_served(client: Client, site: Path) -> None:
    (site / "lonely.js.gz").write_bytes(b"gz")
    assert client.get("/static/lonely.js", ("Accept-Encoding", "gzip")).status == 404
    # The .gz itself is an ordinary file, served as what it is.
    answer = client.get("/static/lonely.js.gz")
    assert answer["Content-Type"] == "application/gzip"
    assert answer.get("Content-Encoding") is None


def test_a_directory_named_like_a_sibling_is_ignored(client: Client, app_js: Path) -> None:
    (app_js.parent / "app.js.br").unlink()
    (app_js.parent / "app.js.br").mkdir()
    assert client.get("/static/app.js", ("Accept-Encoding", "br, gzip")).body == GZIP


def test_head_negotiates_like_get(client: Client, app_js: Path) -> None:
    answer = client.head("/static/app.js", ("Accept-Encoding", "gzip"))
    assert answer["Content-Encoding"] == "gzip"
    assert answer["Content-Length"] == str(len(GZIP))


# --- media types --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("index.html", "text/html; charset=utf-8"),
        ("site.css", "text/css; charset=utf-8"),
        ("app.js", "text/javascript; charset=utf-8"),
        ("mod.mjs", "text/javascript; charset=utf-8"),
        ("notes.txt", "text/plain; charset=utf-8"),
        ("data.json", "application/json"),
        ("logo.svg", "image/svg+xml"),
        ("photo.JPG", "image/jpeg"),
        ("pic.png", "image/png"),
        ("pic.webp", "image/webp"),
        ("font.woff2", "font/woff2"),
        ("mod.wasm", "application/wasm"),
        ("doc.pdf", "application/pdf"),
        ("archive.tar.gz", "application/gzip"),
        ("no-extension", "application/octet-stream"),
        ("strange.zzzz", "application/octet-stream"),
    ],
)
def test_media_types(name: str, expected: str) -> None:
    assert media_type(name) == expected


def test_content_type_of_a_served_file(client: Client) -> None:
    assert client.get("/static/css/site.css")["Content-Type"] == "text/css; charset=utf-8"
    assert client.get("/static/big.bin")["Content-Type"] == "application/octet-stream"


def test_accepted_codings_parse() -> None:
    assert accepted_codings("gzip;q=0.5, BR, *;q=0") == {"gzip": 0.5, "br": 1.0, "*": 0.0}
    assert accepted_codings(" , ,") == {}
    assert choose_coding(None, {"gzip"}) is None
    assert choose_coding("gzip", ()) is None


def test_sibling_symlinked_inside_the_root_is_served(client: Client, site: Path) -> None:
    (site / "build").mkdir()
    (site / "build" / "app.css.gz").write_bytes(b"GZ-IN-BUILD")
    (site / "app.css").write_bytes(b"plain css")
    (site / "app.css.gz").symlink_to("build/app.css.gz")
    answer = client.get("/static/app.css", ("Accept-Encoding", "gzip"))
    assert (answer.body, answer["Content-Encoding"]) == (b"GZ-IN-BUILD", "gzip")


def test_sibling_symlinked_out_is_served_only_when_following(site: Path) -> None:
    from static_client import make_static

    (site.parent / "outside.gz").write_bytes(b"GZ-OUTSIDE")
    (site / "hello.txt.gz").symlink_to(site.parent / "outside.gz")
    gzip = ("Accept-Encoding", "gzip")
    assert Client(make_static(site)).get("/static/hello.txt", gzip).get("Content-Encoding") is None
    following = Client(make_static(site, follow_symlinks=True)).get("/static/hello.txt", gzip)
    assert following.body == b"GZ-OUTSIDE"
