"""No request path escapes the served directory, whatever the encoding; what is served and not."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from static_client import TEXT, Client, make_static, read_out

from porch.static.files import RESOLVE_TTL_S

# Every one of these must be a 404 from the static layer, never the app's and
# never a file outside tmp_path/public (tmp_path/secret.txt, tmp_path/outside/).
TRAVERSALS = [
    "/static/../secret.txt",
    "/static/..%2f..%2fetc/passwd",
    "/static/..%2Fsecret.txt",
    "/static/%2e%2e/%2e%2e/etc/passwd",
    "/static/%2E%2E/secret.txt",
    "/static/%2e%2e%2fsecret.txt",
    "/static/.%2e/secret.txt",
    "/static/%2e./secret.txt",
    "/static/..\\..\\secret.txt",
    "/static/..%5c..%5csecret.txt",
    "/static/..%5Csecret.txt",
    "/static/%252e%252e/secret.txt",
    "/static/..%252f..%252fsecret.txt",
    "/static/%252e%252e%252fsecret.txt",
    "/static/a/../../secret.txt",
    "/static/css/../../secret.txt",
    "/static/css/%2e%2e/%2e%2e/secret.txt",
    "/static/./hello.txt",
    "/static/%2e/hello.txt",
    "/static/hello.txt%00",
    "/static/hello.txt%00.png",
    "/static/%00/../secret.txt",
    "/static/%c0%ae%c0%ae/secret.txt",
    "/static/%c0%ae%c0%ae%c0%af%c0%ae%c0%ae%c0%afsecret.txt",
    "/static/%e0%80%ae%e0%80%ae/secret.txt",
    "/static/%c0%af..%c0%afsecret.txt",
    "/static/%ef%bc%8e%ef%bc%8e/secret.txt",
    "/static/..;/secret.txt",
    "/static/%u002e%u002e/secret.txt",
    "/static/%2/secret.txt",
    "/static/%/secret.txt",
    "/static/%2fetc%2fpasswd",
    "/static//etc/passwd",
    "/static///..//secret.txt",
    "/static/outside/../../secret.txt",
    "/static/...",
    "/static/....//secret.txt",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_traversal_attempts_are_404(client: Client, path: str, open_fds: None) -> None:
    answer = client.get(path)
    assert answer.status == 404
    assert answer.body == b"404 Not Found\n"
    assert answer["Content-Type"] == "text/plain; charset=utf-8"
    assert not answer.sent_by_sendfile


def test_the_traversal_targets_exist_so_the_404s_mean_refusal(site: Path) -> None:
    assert (site.parent / "secret.txt").is_file()
    assert (site / "hello.txt").is_file()


def test_raw_bytes_paths_are_refused(client: Client) -> None:
    # Bytes a lenient client may send unencoded: NUL, backslash, invalid UTF-8.
    for path in (
        b"/static/hello.txt\x00",
        b"/static/..\\secret.txt",
        b"/static/\xc0\xae\xc0\xae/x",
    ):
        assert client.get(path).status == 404


def test_percent_decoding_happens_exactly_once(client: Client, site: Path) -> None:
    # %252e%252e decodes to the literal name "%2e%2e", which may exist.
    literal = site / "%2e%2e"
    literal.mkdir()
    (literal / "file.txt").write_bytes(b"literal\n")
    answer = client.get("/static/%252e%252e/file.txt")
    assert (answer.status, answer.body) == (200, b"literal\n")
    assert client.get("/static/%2e%2e/file.txt").status == 404


def test_encoded_ordinary_characters_are_decoded(client: Client) -> None:
    assert client.get("/static/%68ello.txt").body == TEXT
    assert client.get("/static/css%2Fsite.css").status == 404  # %2F is refused, not a slash


def test_utf8_names_are_served(client: Client, site: Path) -> None:
    (site / "café ü.txt").write_bytes(b"unicode\n")
    assert client.get("/static/caf%C3%A9%20%C3%BC.txt").body == b"unicode\n"


def test_dotfiles_and_dot_directories_are_hidden(client: Client, site: Path) -> None:
    (site / ".env").write_bytes(b"SECRET_KEY=1\n")
    (site / ".git").mkdir()
    (site / ".git" / "config").write_bytes(b"[core]\n")
    (site / "css" / ".htaccess").write_bytes(b"deny\n")
    for path in ("/static/.env", "/static/.git/config", "/static/.git/", "/static/css/.htaccess"):
        assert client.get(path).status == 404, path
    for path in ("/static/%2eenv", "/static/%2Egit/config"):
        assert client.get(path).status == 404, path


def test_empty_segments_are_merged_and_stay_inside(client: Client, site: Path) -> None:
    assert client.get("/static//hello.txt").body == TEXT
    assert client.get("/static/css//site.css").status == 200
    # "//etc/passwd" is public/etc/passwd, never the absolute /etc/passwd.
    (site / "etc").mkdir()
    (site / "etc" / "passwd").write_bytes(b"public copy\n")
    assert client.get("/static//etc/passwd").body == b"public copy\n"


# --- symbolic links ---------------------------------------------------------------


@pytest.fixture
def links(site: Path) -> Path:
    (site / "out").symlink_to("../secret.txt")
    (site / "outdir").symlink_to(site.parent / "outside")
    (site / "inside").symlink_to("hello.txt")
    (site / "inside_dir").symlink_to("css")
    (site / "absolute_inside").symlink_to(site / "hello.txt")
    (site / "loop").symlink_to("loop")
    (site / "dangling").symlink_to("nowhere.txt")
    (site / "devnull").symlink_to("/dev/null")
    return site


def test_symlink_out_of_the_root_is_refused(client: Client, links: Path) -> None:
    assert client.get("/static/out").status == 404
    assert client.get("/static/outdir/passwd").status == 404
    assert client.get("/static/outdir/").status == 404
    assert client.get("/static/devnull").status == 404


def test_symlinks_inside_the_root_are_served(client: Client, links: Path) -> None:
    assert client.get("/static/inside").body == TEXT
    assert client.get("/static/absolute_inside").body == TEXT
    assert client.get("/static/inside_dir/site.css").status == 200


def test_broken_and_looping_symlinks_are_404(client: Client, links: Path) -> None:
    assert client.get("/static/loop").status == 404
    assert client.get("/static/dangling").status == 404


def test_follow_symlinks_serves_links_out_of_the_root(links: Path) -> None:
    client = Client(make_static(links, follow_symlinks=True))
    assert client.get("/static/out").body == b"TOP SECRET\n"
    assert client.get("/static/outdir/passwd").body == b"root:x:0:0\n"
    # Still only regular files, and still no ".." in the URL.
    assert client.get("/static/devnull").status == 404
    assert client.get("/static/outdir/../../secret.txt").status == 404


def test_precompressed_sibling_linking_out_is_ignored(client: Client, site: Path) -> None:
    (site / "hello.txt.gz").symlink_to("../secret.txt")
    answer = client.get("/static/hello.txt", ("Accept-Encoding", "gzip"))
    assert answer.body == TEXT
    assert answer.get("Content-Encoding") is None
    assert answer.get("Vary") is None


def test_index_file_linking_out_is_refused(site: Path) -> None:
    (site / "trap").mkdir()
    (site / "trap" / "index.html").symlink_to(site.parent / "secret.txt")
    client = Client(make_static(site, index="index.html"))
    assert client.get("/static/trap/").status == 404
    assert client.get("/static/trap").status == 404


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def two_releases(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Releases r1 and r2 (v.txt: "one", "two") and a ``current`` link to r1."""
    release1, release2 = tmp_path / "r1", tmp_path / "r2"
    release1.mkdir()
    release2.mkdir()
    (release1 / "v.txt").write_bytes(b"one\n")
    (release2 / "v.txt").write_bytes(b"two\n")
    current = tmp_path / "current"
    current.symlink_to(release1)
    return release1, release2, current


def test_mount_directory_may_be_a_symlink_switched_by_a_deploy(tmp_path: Path) -> None:
    release1, release2, current = two_releases(tmp_path)
    clock = FakeClock()
    client = Client(make_static(current, clock=clock))
    assert client.get("/static/v.txt").body == b"one\n"
    current.unlink()
    current.symlink_to(release2)  # a deploy switches the link
    clock.now += RESOLVE_TTL_S  # the resolution of /static/v.txt is reused this long
    assert client.get("/static/v.txt").body == b"two\n"
    (release2 / "up").symlink_to(release1 / "v.txt")  # out of the *current* root
    assert client.get("/static/up").status == 404


def test_a_deleted_release_behind_a_switched_symlink_is_never_a_404(tmp_path: Path) -> None:
    release1, release2, current = two_releases(tmp_path)
    client = Client(make_static(current, clock=FakeClock()))
    assert client.get("/static/v.txt").body == b"one\n"
    current.unlink()
    current.symlink_to(release2)
    shutil.rmtree(release1)  # the old release goes within the resolution's TTL
    assert client.get("/static/v.txt").body == b"two\n"  # resolved again, same request


def test_a_file_replaced_by_a_directory_is_found_again_at_once(site: Path) -> None:
    client = Client(make_static(site, index="index.html", clock=FakeClock()))
    assert client.get("/static/page").status == 404
    (site / "page").write_bytes(b"a file\n")
    assert client.get("/static/page").body == b"a file\n"
    (site / "page").unlink()
    (site / "page").mkdir()
    (site / "page" / "index.html").write_bytes(b"<h1>a directory</h1>\n")
    answer = client.get("/static/page")
    assert (answer.status, answer["Location"]) == (301, "/static/page/")


def test_a_resolution_is_reused_for_at_most_its_ttl(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"first\n")
    clock = FakeClock()
    client = Client(make_static(tmp_path, clock=clock))
    assert client.get("/static/a.txt").body == b"first\n"
    (tmp_path / "a.txt").write_bytes(b"second\n")  # content: always read afresh
    assert client.get("/static/a.txt").body == b"second\n"
    (tmp_path / "a.txt.gz").write_bytes(b"gz")  # a new sibling: seen after the TTL
    gzip = ("Accept-Encoding", "gzip")
    assert client.get("/static/a.txt", gzip).get("Content-Encoding") is None
    clock.now += RESOLVE_TTL_S
    assert client.get("/static/a.txt", gzip)["Content-Encoding"] == "gzip"


def test_a_file_moved_out_is_not_served_from_the_cache(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"x\n")
    client = Client(make_static(tmp_path, clock=FakeClock()))
    assert client.get("/static/a.txt").status == 200
    (tmp_path / "a.txt").rename(tmp_path.parent / f"{tmp_path.name}-moved.txt")
    assert client.get("/static/a.txt").status == 404  # opened on every request
    (tmp_path / "a.txt").write_bytes(b"back\n")
    assert client.get("/static/a.txt").body == b"back\n"  # a 404 is never cached


# --- only regular files --------------------------------------------------------------


def test_fifo_is_not_opened(client: Client, site: Path) -> None:
    os.mkfifo(site / "pipe")
    assert client.get("/static/pipe").status == 404  # and it did not block


def test_unix_socket_is_not_served(client: Client, site: Path) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(site / "sock"))
        assert client.get("/static/sock").status == 404


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_403(client: Client, site: Path) -> None:
    (site / "hello.txt").chmod(0)
    answer = client.get("/static/hello.txt")
    assert (answer.status, answer.body) == (403, b"403 Forbidden\n")


def test_missing_file_is_404(client: Client) -> None:
    assert client.get("/static/nope.txt").status == 404
    assert client.get("/static/nope/deeper.txt").status == 404
    assert client.get("/static/hello.txt/more").status == 404


# --- directories and the index file ------------------------------------------------------


def test_directories_without_an_index_setting_are_404(client: Client) -> None:
    for path in ("/static", "/static/", "/static/docs", "/static/docs/", "/static/css/"):
        assert client.get(path).status == 404, path


def test_index_file_serves_directory_urls(site: Path) -> None:
    client = Client(make_static(site, index="index.html"))
    answer = client.get("/static/docs/")
    assert (answer.status, answer.body) == (200, b"<h1>docs</h1>\n")
    assert answer["Content-Type"] == "text/html; charset=utf-8"
    assert client.get("/static/empty/").status == 404  # no index: 404, never a listing
    assert client.get("/static/empty").status == 404  # and no redirect either


def test_directory_without_slash_redirects_when_it_has_an_index(site: Path) -> None:
    client = Client(make_static(site, index="index.html"))
    answer = client.get("/static/docs")
    assert answer.status == 301
    assert answer["Location"] == "/static/docs/"
    assert answer.body == b"301 Moved Permanently\n"
    assert client.head("/static/docs")["Location"] == "/static/docs/"
    # The query stays (nginx keeps it too): /dir?page=2 -> /dir/?page=2
    assert client.get("/static/docs?page=2&q=a%20b")["Location"] == "/static/docs/?page=2&q=a%20b"


def test_redirect_location_is_percent_encoded(site: Path) -> None:
    (site / "a b\u00e9").mkdir()
    (site / "a b\u00e9" / "index.html").write_bytes(b"x")
    client = Client(make_static(site, index="index.html"))
    answer = client.get("/static/a%20b%C3%A9")
    assert answer["Location"] == "/static/a%20b%C3%A9/"


def test_mount_root_redirects_and_serves_its_index(site: Path) -> None:
    (site / "index.html").write_bytes(b"home\n")
    client = Client(make_static(site, index="index.html"))
    assert client.get("/static")["Location"] == "/static/"
    assert client.get("/static/").body == b"home\n"
    root_client = Client(make_static(site, prefix="/", index="index.html"))
    assert root_client.get("/").body == b"home\n"


def test_file_url_with_trailing_slash_is_404(client: Client) -> None:
    assert client.get("/static/hello.txt/").status == 404


# --- which requests are the static layer's ------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        b"/",
        b"/app",
        b"/staticx/hello.txt",
        b"/stat",
        b"*",
        b"",
        b"static/hello.txt",
        b"/static%2fhello.txt",
    ],
)
def test_paths_outside_every_mount_go_to_the_app(client: Client, path: bytes) -> None:
    assert client.raw(path) is None
    assert client.raw(path, method="POST") is None


def test_prefix_is_matched_after_decoding(client: Client) -> None:
    assert client.get("/%73tatic/hello.txt").body == TEXT


def test_longest_prefix_wins(site: Path, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "logo.svg").write_bytes(b"<svg/>")
    from porch.static import StaticFiles
    from porch.static.urls import Mount

    static = StaticFiles(mounts=[Mount.parse(f"/s={site}"), Mount.parse(f"/s/img={images}")])
    client = Client(static)
    assert client.get("/s/img/logo.svg").body == b"<svg/>"
    assert client.get("/s/hello.txt").body == TEXT
    assert client.get("/s/img/hello.txt").status == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])
def test_other_methods_are_405_with_allow(client: Client, method: str) -> None:
    for path in ("/static/hello.txt", "/static/missing", "/static/../secret.txt"):
        response = client.raw(path, method=method)
        assert response is not None
        answer = read_out(response)
        assert answer.status == 405
        assert answer["Allow"] == "GET, HEAD"
        assert answer.body == b"405 Method Not Allowed\n"


# --- property: whatever the path, nothing outside the root is ever opened -----------------

_PIECES = [
    "..",
    ".",
    "%2e",
    "%2E",
    "%2f",
    "%2F",
    "%5c",
    "\\",
    "%00",
    "%252e",
    "%25",
    "%c0%ae",
    "/",
    "//",
    "hello.txt",
    "css",
    "site.css",
    "secret.txt",
    "outside",
    "passwd",
    "out",
    "outdir",
    "inside_dir",
    "a",
    ";",
    "%",
    "%2",
    "~",
]


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(pieces=st.lists(st.sampled_from(_PIECES), max_size=10))
def test_no_path_opens_a_file_outside_the_root(links: Path, pieces: list[str]) -> None:
    client = Client(make_static(links))
    response = client.raw("/static/" + "".join(pieces))
    if response is None:
        return
    try:
        if response.file is not None:
            target = os.readlink(f"/proc/self/fd/{response.file.fd}")
            assert Path(target).is_relative_to(links.resolve()), (pieces, target)
            assert response.status in (200, 206)
        else:
            assert response.status in (301, 404), pieces
    finally:
        response.close()
