"""HTTP-date formatting and parsing (RFC 9110 §5.6.7), checked against the stdlib's answers."""

from __future__ import annotations

import calendar
import time
from datetime import datetime
from email.utils import formatdate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from porch.protocol.dates import format_http_date, parse_http_date

# 0001-01-01 .. 9999-12-31, the years every form (and datetime) can hold.
SECONDS = st.integers(min_value=-62_135_596_800, max_value=253_402_300_799)
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@given(SECONDS)
def test_format_is_what_email_utils_formats(seconds: int) -> None:
    assert format_http_date(seconds) == formatdate(seconds, usegmt=True)


@given(SECONDS.filter(lambda seconds: time.gmtime(seconds).tm_year >= 100))
def test_every_form_parses_back(seconds: int) -> None:
    tm = time.gmtime(seconds)
    asctime = (
        f"{format_http_date(seconds)[:3]} {MONTHS[tm.tm_mon - 1]} {tm.tm_mday:2d} "
        f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d} {tm.tm_year:04d}"
    )
    assert parse_http_date(format_http_date(seconds)) == seconds
    assert parse_http_date(asctime) == seconds


@given(
    st.integers(min_value=100, max_value=9999),
    st.integers(min_value=1, max_value=12),
    st.integers(min_value=1, max_value=31),
)
def test_calendar_days_as_datetime_and_timegm_judge_them(year: int, month: int, day: int) -> None:
    text = f"Mon, {day:02d} {MONTHS[month - 1]} {year:04d} 12:34:56 GMT"
    try:
        datetime(year, month, day)
    except ValueError:
        assert parse_http_date(text) is None
    else:
        assert parse_http_date(text) == calendar.timegm((year, month, day, 12, 34, 56))


def test_rfc850_two_digit_year_is_within_fifty_years() -> None:
    this_year = time.gmtime().tm_year
    later = (this_year + 10) % 100
    earlier = (this_year + 60) % 100  # more than 50 years ahead: the past century
    parsed_later = parse_http_date(f"Sunday, 06-Nov-{later:02d} 08:49:37 GMT")
    parsed_earlier = parse_http_date(f"Sunday, 06-Nov-{earlier:02d} 08:49:37 GMT")
    assert parsed_later is not None and parsed_earlier is not None
    assert time.gmtime(parsed_later).tm_year == this_year + 10
    assert time.gmtime(parsed_earlier).tm_year == this_year + 60 - 100


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Sun, 06 Nov 1994 08:49:37 GMT", 784111777),
        ("Sun, 06 Nov 1994 08:49:60 GMT", 784111800),  # a leap second
        ("Sun, 06 Nov 1994 08:49:61 GMT", None),
        ("Sun, 06 Nov 1994 24:00:00 GMT", None),
        ("Sun, 06 Nov 1994 08:60:00 GMT", None),
        ("Thu, 29 Feb 1996 00:00:00 GMT", 825552000),
        ("Mon, 29 Feb 1900 00:00:00 GMT", None),  # 1900 is no leap year
        ("Tue, 29 Feb 2000 00:00:00 GMT", 951782400),  # 2000 is one
        ("Sun, 06 Nov 1994 08:49:37 UTC", None),
        ("Sun,  6 Nov 1994 08:49:37 GMT", None),
    ],
)
def test_parse_edges(text: str, expected: int | None) -> None:
    assert parse_http_date(text) == expected
