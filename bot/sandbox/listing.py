"""`GET /tasks`: query parameters and the response shape."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

from bot.sandbox.clock import parse_list_time
from bot.sandbox.errors import ApiError
from bot.sandbox.tasks import EmulatedTask, TaskStatus

MAX_WINDOW = 24 * 3600.0
MAX_PAGE_SIZE = 100
_LISTABLE = {s.value for s in TaskStatus} - {TaskStatus.UNKNOWN.value}


def _invalid(message: str) -> ApiError:
    return ApiError(400, "InvalidParameter", message)


def _int(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _invalid(f"The parameter `{name}` must be an integer.") from None
    if not low <= value <= high:
        raise _invalid(f"The parameter `{name}` must be in the range [{low}, {high}].")
    return value


def _ms(epoch: float | None) -> int | None:
    return None if epoch is None else int(epoch * 1000)


def _item(task: EmulatedTask, region: str) -> dict[str, Any]:
    account = hashlib.sha256(b"sandbox-account").hexdigest()[:16]
    return {
        "api_key_id": task.api_key_id,
        "caller_parent_id": account,
        "caller_uid": account,
        "end_time": _ms(task.ended_at),
        "gmt_create": _ms(task.submitted_at),
        "model_name": task.params.model,
        "region": region,
        "request_id": task.request_id,
        "start_time": _ms(task.scheduled_at),
        "status": task.status.value,
        "task_id": task.task_id,
        "user_api_unique_key": f"apikey:v1:{task.api_key_id}",
    }


def list_tasks(
    query: Mapping[str, str],
    tasks: Iterable[EmulatedTask],
    region: str,
    task_ttl: float,
) -> dict[str, Any]:
    """The list answer without `request_id`. Raises ApiError(400) for bad parameters."""
    now = time.time()
    try:
        end = parse_list_time(query["end_time"]) if query.get("end_time") else now
        start = (
            parse_list_time(query["start_time"]) if query.get("start_time") else end - MAX_WINDOW
        )
    except ValueError:
        raise _invalid("start_time and end_time must be formatted as YYYYMMDDhhmmss.") from None
    if end < start:
        raise _invalid("end_time must not be earlier than start_time.")
    if end - start > MAX_WINDOW:
        raise _invalid("The time window between start_time and end_time must not exceed 24 hours.")
    status = query.get("status") or None
    if status is not None and status.upper() not in _LISTABLE:
        raise _invalid(f"The parameter `status` must be one of {', '.join(sorted(_LISTABLE))}.")
    model_name = query.get("model_name") or None
    api_key_id = query.get("api_key_id") or None
    page_no = _int(query, "page_no", 1, 1, 1_000_000)
    page_size = _int(query, "page_size", 10, 1, MAX_PAGE_SIZE)

    # Bounds have second precision: include the whole end second.
    matching = [
        task
        for task in tasks
        if not task.expired(task_ttl)
        and start <= task.submitted_at < end + 1
        and (status is None or task.status.value == status.upper())
        and (model_name is None or model_name == task.params.model)
        and (api_key_id is None or api_key_id == task.api_key_id)
    ]
    matching.sort(key=lambda t: t.submitted_at, reverse=True)
    page = matching[(page_no - 1) * page_size : page_no * page_size]
    return {
        "data": [_item(task, region) for task in page],
        "total": len(matching),
        "total_page": math.ceil(len(matching) / page_size),
        "page_no": page_no,
        "page_size": page_size,
    }
