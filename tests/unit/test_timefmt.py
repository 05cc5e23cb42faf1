"""Times as people read them: one formatter, local time, minutes, no ISO ``T``/``Z``."""

from __future__ import annotations

import datetime as dt
import os
import time

import pytest

from huijiao_plugin.core.timefmt import local_time


@pytest.fixture
def shanghai():
    """The computer's zone set to China Standard Time (UTC+8, no daylight saving) for the test."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Shanghai"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def test_utc_from_the_server_in_local_time(shanghai):
    assert local_time("2026-12-07T06:05:00Z") == "2026-12-07 14:05"
    assert local_time("2026-12-07T06:05:59.123+00:00") == "2026-12-07 14:05"
    assert local_time("2026-12-07T20:30:00.000Z") == "2026-12-08 04:30"  # the next day in China
    assert local_time("2026-12-07T14:05:00+08:00") == "2026-12-07 14:05"


def test_dates_naive_times_and_other_text(shanghai):
    assert local_time("2026-12-07") == "2026-12-07"
    assert local_time("2026-12-07T14:05:31") == "2026-12-07 14:05"  # a photo's EXIF time is local already
    assert local_time(None) == "" and local_time("") == "" and local_time("NULL") == ""
    assert local_time("未知") == "未知"


def test_follows_the_computer_zone():
    stamp = dt.datetime(2026, 12, 7, 6, 5, tzinfo=dt.timezone.utc)
    expected = dt.datetime.fromtimestamp(stamp.timestamp()).strftime("%Y-%m-%d %H:%M")
    assert local_time("2026-12-07T06:05:00Z") == expected
