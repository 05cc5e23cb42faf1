"""Times as people read them: local time, ``2026-12-07 14:05``, never raw ISO UTC (one place for all panels,
sheets and pages)."""

from __future__ import annotations

import datetime as _dt


def local_time(value: object) -> str:
    """An ISO time (the server's and the patch store's are UTC with ``Z`` or an offset) in the computer's
    time zone as ``2026-12-07 14:05``; a plain date stays a date; a time without zone (a photo's EXIF time)
    is already local; text that is not a time is returned as it is."""
    if value is None or value == "":
        return ""
    text = str(value).strip()
    if text in ("", "NULL"):
        return ""
    try:
        moment = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if len(text) <= 10:  # a plain date
        return moment.strftime("%Y-%m-%d")
    if moment.tzinfo is not None:
        moment = moment.astimezone()
    return moment.strftime("%Y-%m-%d %H:%M")
