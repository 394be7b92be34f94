"""Wall-clock formats of the API: `YYYY-MM-DD HH:mm:ss.SSS` and `YYYYMMDDhhmmss`, both in UTC+8."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

WAN_TZ = timezone(timedelta(hours=8))  # the service reports Beijing time


def wan_time(epoch: float) -> str:
    """`2025-09-23 22:14:10.825` for a Unix time."""
    moment = datetime.fromtimestamp(epoch, WAN_TZ)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def parse_list_time(text: str) -> float:
    """Unix time of a list-API bound like `20230420000000` (UTC+8). Raises ValueError."""
    if len(text) != 14 or not text.isdigit():
        raise ValueError(text)
    return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=WAN_TZ).timestamp()
