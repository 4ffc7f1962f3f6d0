"""Validators and conditional requests (RFC 9110 §8.8, §13): 200, 304, 412 and If-Range."""

from __future__ import annotations

import calendar
import os
import time
from pathlib import Path

import pytest
from static_client import TEXT, Client, make_static

from porch.static.conditions import (
    RequestFields,
    Validators,
    collect_fields,
    evaluate_preconditions,
    if_range_allows,
    parse_http_date,
)

MTIME = 784111777  # Sun, 06 Nov 1994 08:49:37 GMT
MTIME_DATE = "Sun, 06 Nov 1994 08:49:37 GMT"
BEFORE = "Sun, 06 Nov 1994 08:49:36 GMT"
AFTER = "Sun, 06 Nov 1994 08:49:38 GMT"


@pytest.fixture
def dated(site: Path) -> Path:
    path = site / "hello.txt"
    os.utime(path, ns=(MTIME * 10**9 + 123, MTIME * 10**9 + 123))
    return path


def etag_of(client: Client) -> str:
    return client.get("/static/hello.txt")["ETag"]


def test_validators_on_a_200(client: Client, dated: Path) -> None:
    answer = client.get("/static/hello.txt")
    size = len(TEXT)
    assert answer["ETag"] == f'"{MTIME * 10**9 + 123:x}-{size:x}"'  # strong
    assert answer["Last-Modified"] == MTIME_DATE
    assert answer["Cache-Control"] == "public, max-age=3600"
    assert answer["Accept-Ranges"] == "bytes"


def test_etag_changes_with_content(client: Client, site: Path) -> None:
    before = etag_of(client)
    (site / "hello.txt").write_bytes(TEXT + b"more")
    assert etag_of(client) != before


def test_cache_control_is_configurable_and_may_be_off(site: Path) -> None:
    immutable = Client(make_static(site, cache_control="public, max-age=31536000, immutable"))
    assert immutable.get("/static/hello.txt")["Cache-Control"].endswith("immutable")
    assert Client(make_static(site)).get("/static/hello.txt").get("Cache-Control") is None


# --- Last-Modified is never later than Date (RFC 9110 §8.8.2.1) -------------------------------

FUTURE = 1893456000  # Tue, 01 Jan 2030 00:00:00 GMT
FUTURE_DATE = "Tue, 01 Jan 2030 00:00:00 GMT"


def test_last_modified_in_the_future_is_the_date(site: Path) -> None:
    path = site / "hello.txt"
    os.utime(path, (FUTURE, FUTURE))
    client = Client(make_static(site, date_clock=lambda: MTIME + 0.7))
    answer = client.get("/static/hello.txt")
    assert answer["Last-Modified"] == MTIME_DATE  # the Date's second, not 2030
    assert answer["ETag"] == f'"{FUTURE * 10**9:x}-{len(TEXT):x}"'  # the file's own mtime
    # The file changes; a client holding the 2030 date porch used to send gets it.
    path.write_bytes(b"changed\n")
    changed = client.get("/static/hello.txt", ("If-Modified-Since", FUTURE_DATE))
    assert (changed.status, changed.body) == (200, b"changed\n")
    # Unchanged, its ETag still validates; a date of the future never does.
    os.utime(path, (FUTURE, FUTURE))
    etag = client.get("/static/hello.txt")["ETag"]
    assert client.get("/static/hello.txt", ("If-None-Match", etag)).status == 304
    assert client.get("/static/hello.txt", ("If-Modified-Since", FUTURE_DATE)).status == 200


def test_last_modified_of_a_file_written_after_the_cached_date_is_the_date(site: Path) -> None:
    # The worker's Date is cached per second and refreshed by its tick, so a file
    # written just now can be a second newer than the Date this response carries.
    path = site / "hello.txt"
    os.utime(path, ns=((MTIME + 1) * 10**9 + 5, (MTIME + 1) * 10**9 + 5))
    client = Client(make_static(site, date_clock=lambda: MTIME))
    answer = client.get("/static/hello.txt")
    assert answer["Last-Modified"] == MTIME_DATE
    assert client.get("/static/hello.txt", ("If-Modified-Since", BEFORE)).status == 200
    ranged = client.get("/static/hello.txt", ("Range", "bytes=0-4"), ("If-Range", MTIME_DATE))
    assert ranged.status == 200  # not a strong validator (§8.8.2.2)


# --- If-None-Match / If-Modified-Since -> 304 ------------------------------------------------


def test_if_none_match_same_etag_is_304(client: Client, dated: Path) -> None:
    etag = etag_of(client)
    answer = client.get("/static/hello.txt", ("If-None-Match", etag))
    assert answer.status == 304
    assert answer.body == b""
    # RFC 9110 §15.4.5: the fields a 200 would carry for caches, no Content-Length.
    assert answer["ETag"] == etag
    assert answer["Cache-Control"] == "public, max-age=3600"
    assert answer["Last-Modified"] == MTIME_DATE
    assert answer.get("Content-Length") is None
    assert answer.get("Content-Type") is None


@pytest.mark.parametrize(
    ("template", "status"),
    [
        ("{etag}", 304),
        ("W/{etag}", 304),  # If-None-Match uses the weak comparison
        ('"other", {etag}', 304),
        ('"a", "b",{etag} ,', 304),
        ('"other"', 200),
        ('W/"other", "x"', 200),
        ("*", 304),
        ("{bare}", 200),  # an unquoted tag is malformed: ignored
        ('"unterminated', 200),
    ],
)
def test_if_none_match_forms(client: Client, template: str, status: int) -> None:
    etag = etag_of(client)
    value = template.format(etag=etag, bare=etag.strip('"'))
    assert client.get("/static/hello.txt", ("If-None-Match", value)).status == status


def test_if_none_match_in_two_fields_is_one_list(client: Client) -> None:
    etag = etag_of(client)
    answer = client.get("/static/hello.txt", ("If-None-Match", '"x"'), ("If-None-Match", etag))
    assert answer.status == 304


@pytest.mark.parametrize(
    ("date", "status"),
    [
        (MTIME_DATE, 304),
        (AFTER, 304),
        (BEFORE, 200),
        ("Sunday, 06-Nov-94 08:49:37 GMT", 304),  # RFC 850 form
        ("Sun Nov  6 08:49:37 1994", 304),  # asctime form
        ("Sun Nov  6 08:49:36 1994", 200),
        ("not a date", 200),
        ("Sun, 31 Feb 1994 08:49:37 GMT", 200),
        ("", 200),
    ],
)
def test_if_modified_since(client: Client, dated: Path, date: str, status: int) -> None:
    assert client.get("/static/hello.txt", ("If-Modified-Since", date)).status == status


def test_if_modified_since_given_twice_is_ignored(client: Client, dated: Path) -> None:
    answer = client.get(
        "/static/hello.txt", ("If-Modified-Since", AFTER), ("If-Modified-Since", AFTER)
    )
    assert answer.status == 200


def test_if_none_match_wins_over_if_modified_since(client: Client, dated: Path) -> None:
    # RFC 9110 §13.1.3: with If-None-Match present, If-Modified-Since is not evaluated.
    etag = etag_of(client)
    stale = client.get(
        "/static/hello.txt", ("If-None-Match", '"old"'), ("If-Modified-Since", AFTER)
    )
    assert stale.status == 200
    fresh = client.get("/static/hello.txt", ("If-None-Match", etag), ("If-Modified-Since", BEFORE))
    assert fresh.status == 304


def test_head_gets_304_too(client: Client) -> None:
    answer = client.head("/static/hello.txt", ("If-None-Match", etag_of(client)))
    assert answer.status == 304


# --- If-Match / If-Unmodified-Since -> 412 -------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "status"),
    [("{etag}", 200), ("*", 200), ('"other"', 412), ("W/{etag}", 412), ('"x", {etag}', 200)],
)
def test_if_match_uses_strong_comparison(client: Client, template: str, status: int) -> None:
    value = template.format(etag=etag_of(client))
    answer = client.get("/static/hello.txt", ("If-Match", value))
    assert answer.status == status
    if status == 412:
        assert answer.body == b"412 Precondition Failed\n"


@pytest.mark.parametrize(("date", "status"), [(MTIME_DATE, 200), (AFTER, 200), (BEFORE, 412)])
def test_if_unmodified_since(client: Client, dated: Path, date: str, status: int) -> None:
    assert client.get("/static/hello.txt", ("If-Unmodified-Since", date)).status == status


def test_if_match_wins_over_if_unmodified_since(client: Client, dated: Path) -> None:
    etag = etag_of(client)
    answer = client.get("/static/hello.txt", ("If-Match", etag), ("If-Unmodified-Since", BEFORE))
    assert answer.status == 200


def test_failed_if_match_comes_before_if_none_match(client: Client) -> None:
    etag = etag_of(client)
    answer = client.get("/static/hello.txt", ("If-Match", '"x"'), ("If-None-Match", etag))
    assert answer.status == 412


# --- If-Range -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "status"),
    [
        ("{etag}", 206),
        ('"other"', 200),
        ("W/{etag}", 200),  # If-Range needs a strong match
        (MTIME_DATE, 206),
        (AFTER, 200),  # a date must match Last-Modified exactly
        (BEFORE, 200),
        ("garbage", 200),
    ],
)
def test_if_range(client: Client, dated: Path, template: str, status: int) -> None:
    value = template.format(etag=etag_of(client))
    answer = client.get("/static/hello.txt", ("Range", "bytes=0-4"), ("If-Range", value))
    assert answer.status == status
    assert answer.body == (TEXT[:5] if status == 206 else TEXT)


def test_if_range_date_of_a_file_modified_just_now_is_not_strong(
    client: Client, site: Path
) -> None:
    # RFC 9110 §8.8.2.2: a Last-Modified within the last second is weak.
    last_modified = client.get("/static/hello.txt")["Last-Modified"]
    answer = client.get("/static/hello.txt", ("Range", "bytes=0-4"), ("If-Range", last_modified))
    assert answer.status == 200


def test_if_range_without_range_changes_nothing(client: Client) -> None:
    assert client.get("/static/hello.txt", ("If-Range", '"other"')).status == 200


def test_304_wins_over_range(client: Client) -> None:
    etag = etag_of(client)
    answer = client.get("/static/hello.txt", ("If-None-Match", etag), ("Range", "bytes=0-1"))
    assert answer.status == 304


# --- the pure pieces ------------------------------------------------------------------------------


def test_parse_http_date_forms() -> None:
    assert parse_http_date(MTIME_DATE) == MTIME
    assert parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == MTIME
    assert parse_http_date("Sun Nov  6 08:49:37 1994") == MTIME
    assert parse_http_date("Sun, 06 Nov 1994 08:49:37 +0000") is None
    assert parse_http_date("sun, 06 nov 1994 08:49:37 gmt") is None
    assert parse_http_date("Sun, 06 Nov 1994 25:49:37 GMT") is None


def test_rfc850_two_digit_years_are_never_more_than_50_years_ahead() -> None:
    # RFC 9110 §5.6.7: such a year is the most recent past year with those digits.
    this_year = time.gmtime().tm_year
    for offset in (-30, -1, 0, 1, 49, 51, 70):
        year = this_year + offset
        expected = year if offset <= 50 else year - 100
        weekday = time.strftime("%A", time.gmtime(calendar.timegm((expected, 1, 1, 0, 0, 0))))
        parsed = parse_http_date(f"{weekday}, 01-Jan-{year % 100:02d} 00:00:00 GMT")
        assert parsed == calendar.timegm((expected, 1, 1, 0, 0, 0)), offset


def test_collect_fields_joins_lists_and_spoils_repeated_singletons() -> None:
    fields = collect_fields(
        [
            (b"accept-encoding", b"gzip"),
            (b"Accept-Encoding", b"br"),
            (b"RANGE", b"bytes=0-1"),
            (b"range", b"bytes=2-3"),
            (b"If-None-Match", b'"a"'),
        ]
    )
    assert fields.accept_encoding == "gzip, br"
    assert fields.range == ""  # invalid: ignored as a whole
    assert fields.if_none_match == '"a"'
    assert fields.if_match is None


def test_preconditions_without_fields_hold() -> None:
    validators = Validators(etag='"1-2"', last_modified=MTIME, date_is_strong=True, date=MTIME + 9)
    assert evaluate_preconditions(RequestFields(), validators) is None
    assert if_range_allows(RequestFields(), validators)
