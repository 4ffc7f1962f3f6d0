"""HTTP-date (RFC 9110 §5.6.7): IMF-fixdate out, any of the three forms in.

Plain arithmetic on purpose: ``email.utils``, ``datetime`` and ``calendar``
would do the same, but importing them costs every worker a few hundred KiB for
two small functions. Names of days and months are fixed English, never the
locale's (``time.strftime`` would follow ``LC_TIME``).
"""

from __future__ import annotations

import re
import time

__all__ = ["format_http_date", "parse_http_date"]

_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # tm_wday order
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, 1)}
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

_MONTH = "(?P<month>" + "|".join(_MONTH_NAMES) + ")"
_TIME = r"(?P<hour>\d\d):(?P<minute>\d\d):(?P<second>\d\d)"
# Recipients accept IMF-fixdate and the obsolete RFC 850 and asctime forms.
_DATE_FORMS = (
    re.compile(rf"[A-Z][a-z]{{2}}, (?P<day>\d\d) {_MONTH} (?P<year>\d{{4}}) {_TIME} GMT"),
    re.compile(rf"[A-Z][a-z]{{5,8}}, (?P<day>\d\d)-{_MONTH}-(?P<year>\d\d) {_TIME} GMT"),
    re.compile(rf"[A-Z][a-z]{{2}} {_MONTH} (?P<day>[ \d]\d) {_TIME} (?P<year>\d{{4}})"),
)


def format_http_date(seconds: float) -> str:
    """IMF-fixdate of ``seconds`` since the epoch, the only form senders may generate."""
    tm = time.gmtime(seconds)
    return (
        f"{_DAY_NAMES[tm.tm_wday]}, {tm.tm_mday:02d} {_MONTH_NAMES[tm.tm_mon - 1]} "
        f"{tm.tm_year:04d} {tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d} GMT"
    )


def parse_http_date(text: str) -> int | None:
    """Seconds since the epoch of an HTTP-date in any of its three forms; None if invalid."""
    for form in _DATE_FORMS:
        match = form.fullmatch(text)
        if match is None:
            continue
        year = int(match["year"])
        if year < 100:
            # A two-digit year more than 50 years in the future is the most
            # recent past year with those digits.
            this_year = time.gmtime().tm_year
            year += this_year - this_year % 100
            if year > this_year + 50:
                year -= 100
        month, day = _MONTHS[match["month"]], int(match["day"])
        hour, minute, second = int(match["hour"]), int(match["minute"]), int(match["second"])
        # A real calendar day (no 31 Feb) and clock time (second 60: a leap second).
        if not (year >= 1 and 1 <= day <= _days_in_month(year, month)):
            return None
        if hour > 23 or minute > 59 or second > 60:
            return None
        return ((_days_since_epoch(year, month, day) * 24 + hour) * 60 + minute) * 60 + second
    return None


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _days_in_month(year: int, month: int) -> int:
    return 29 if month == 2 and _is_leap(year) else _DAYS_IN_MONTH[month - 1]


def _days_since_epoch(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's days_from_civil)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468
