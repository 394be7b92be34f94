"""Typed requests and results of the Wan image API (editing and text-to-image), and parsing of its
JSON."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from pathlib import Path
from typing import Any

from bot.wan.errors import BAD_RESPONSE, WanError

log = logging.getLogger(__name__)

# Wan's time strings carry no zone; they are China Standard Time (UTC+8).
WAN_TZ = timezone(timedelta(hours=8))
# The longest prompt and negative prompt both models take whole (longer ones are cut short by Wan).
MAX_PROMPT = 2000
MAX_NEGATIVE = 500


class TaskStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    UNKNOWN = "UNKNOWN"
    # Any other value (none is documented): not final, the task is polled on with backoff.
    UNRECOGNISED = "UNRECOGNISED"

    @property
    def is_final(self) -> bool:
        """Only the documented terminal states end a task."""
        return self in _FINAL_STATUSES

    @classmethod
    def parse(cls, value: object) -> TaskStatus:
        if value is None or value == "":
            return cls.UNKNOWN  # no status at all: the task is not known
        try:
            status = cls(str(value).upper())
        except ValueError:
            status = cls.UNRECOGNISED
        if status == cls.UNRECOGNISED:
            log.warning("Wan answered an undocumented task status %r; polling on", str(value)[:40])
        return status


_FINAL_STATUSES = frozenset(
    {TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELED, TaskStatus.UNKNOWN}
)


@dataclass(frozen=True)
class InputImage:
    """One input image. Its bytes (`data`, or the file `path` holding them) are needed for the
    base64 and upload transports, `url` for url."""

    data: bytes | None
    mime: str
    url: str | None = None
    filename: str = "image.png"
    # The bytes on disk instead of in memory (a job waiting for its create): read while it is sent.
    path: Path | None = None

    @property
    def has_bytes(self) -> bool:
        return self.data is not None or self.path is not None

    def __repr__(self) -> str:  # the bytes would flood logs
        size = len(self.data) if self.data is not None else None
        return (
            f"InputImage(mime={self.mime!r}, bytes={size}, path={self.path!r}, url={self.url!r}, "
            f"filename={self.filename!r})"
        )


class _Parameters:
    """The `parameters` object both create routes share."""

    n: int
    seed: int | None
    size: str | None
    prompt_extend: bool | None
    watermark: bool | None

    def parameters(self) -> dict[str, Any]:
        """The `parameters` object; `n` is always sent because both models default to 4 (paid) images."""
        params: dict[str, Any] = {"n": self.n}
        if self.seed is not None:
            params["seed"] = self.seed
        if self.size is not None:
            params["size"] = self.size
        if self.prompt_extend is not None:
            params["prompt_extend"] = self.prompt_extend
        if self.watermark is not None:
            params["watermark"] = self.watermark
        return params


@dataclass(frozen=True)
class EditRequest(_Parameters):
    """An image edit (`wan2.5-i2i-preview`): a prompt and one to three input images."""

    prompt: str
    images: Sequence[InputImage]
    negative_prompt: str | None = None
    n: int = 1
    seed: int | None = None
    size: str | None = None
    prompt_extend: bool | None = None
    watermark: bool | None = None


@dataclass(frozen=True)
class ImagineRequest(_Parameters):
    """A text-to-image task (`wan2.5-t2i-preview`): a prompt and no input image."""

    prompt: str
    negative_prompt: str | None = None
    n: int = 1
    seed: int | None = None
    size: str | None = None
    prompt_extend: bool | None = None
    watermark: bool | None = None


@dataclass(frozen=True)
class CreatedTask:
    task_id: str
    status: TaskStatus
    request_id: str


@dataclass(frozen=True)
class ImageResult:
    """One entry of `output.results`: an image URL, or a per-image failure (partial failure)."""

    url: str | None
    code: str | None
    message: str | None
    orig_prompt: str | None
    actual_prompt: str | None

    @property
    def ok(self) -> bool:
        return bool(self.url) and not self.code


@dataclass(frozen=True)
class TaskResult:
    task_id: str
    status: TaskStatus
    results: list[ImageResult] = field(default_factory=list)
    image_count: int = 0
    metrics: dict[str, int] | None = None
    code: str | None = None
    message: str | None = None
    request_id: str | None = None
    submit_time: datetime | None = None
    scheduled_time: datetime | None = None
    end_time: datetime | None = None

    @property
    def urls(self) -> list[str]:
        return [r.url for r in self.results if r.ok and r.url]

    @property
    def actual_prompt(self) -> str | None:
        return next((r.actual_prompt for r in self.results if r.actual_prompt), None)

    @property
    def error(self) -> WanError | None:
        """The task's failure as a WanError, for FAILED tasks (None otherwise)."""
        if self.status != TaskStatus.FAILED:
            return None
        return WanError(
            self.code or "Unknown", self.message or "", request_id=self.request_id, http_status=None
        )


def parse_time(value: object) -> datetime | None:
    """`2025-09-23 22:14:10.800` (UTC+8, no zone) -> an aware datetime; None if absent or odd."""
    if not isinstance(value, str) or not value:
        return None
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=WAN_TZ)
        except ValueError:
            continue
    return None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _parse_image(item: Mapping[str, Any]) -> ImageResult:
    return ImageResult(
        url=_str_or_none(item.get("url")),
        code=_str_or_none(item.get("code")),
        message=_str_or_none(item.get("message")),
        orig_prompt=_str_or_none(item.get("orig_prompt")),
        actual_prompt=_str_or_none(item.get("actual_prompt")),
    )


def _output(body: object) -> Mapping[str, Any]:
    output = body.get("output") if isinstance(body, Mapping) else None
    if not isinstance(output, Mapping):
        raise WanError(BAD_RESPONSE, "response has no output object")
    return output


def parse_created(body: object) -> CreatedTask:
    output = _output(body)
    task_id = output.get("task_id")
    if not isinstance(task_id, str) or not task_id:
        raise WanError(BAD_RESPONSE, "create response has no task_id")
    assert isinstance(body, Mapping)
    return CreatedTask(
        task_id=task_id,
        status=TaskStatus.parse(output.get("task_status")),
        request_id=str(body.get("request_id") or ""),
    )


def parse_task(body: object, task_id: str | None = None) -> TaskResult:
    """A query (or cancel) response -> TaskResult. Tolerates missing optional fields."""
    output = _output(body)
    assert isinstance(body, Mapping)
    raw_results = output.get("results")
    results = (
        [_parse_image(r) for r in raw_results if isinstance(r, Mapping)]
        if isinstance(raw_results, list)
        else []
    )
    usage = body.get("usage")
    image_count = usage.get("image_count") if isinstance(usage, Mapping) else None
    raw_metrics = output.get("task_metrics")
    metrics = (
        {str(k): int(v) for k, v in raw_metrics.items() if isinstance(v, int | float)}
        if isinstance(raw_metrics, Mapping)
        else None
    )
    return TaskResult(
        task_id=str(output.get("task_id") or task_id or ""),
        status=TaskStatus.parse(output.get("task_status")),
        results=results,
        image_count=int(image_count) if isinstance(image_count, int | float) else 0,
        metrics=metrics,
        code=_str_or_none(output.get("code")),
        message=_str_or_none(output.get("message")),
        request_id=_str_or_none(body.get("request_id")),
        submit_time=parse_time(output.get("submit_time")),
        scheduled_time=parse_time(output.get("scheduled_time")),
        end_time=parse_time(output.get("end_time")),
    )


@dataclass(frozen=True)
class ListedTask:
    """One entry of the task list (`GET /tasks`): no results, only who and when."""

    task_id: str
    status: TaskStatus
    model: str | None
    created_at: datetime | None  # `gmt_create`, Unix milliseconds in the answer
    api_key_id: str | None = None


@dataclass(frozen=True)
class TaskListing:
    """The tasks of a time window, every page read (`complete`), or as many as were read."""

    tasks: list[ListedTask]
    total: int
    complete: bool


def _epoch_ms(value: object) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return datetime.fromtimestamp(value / 1000, UTC)


def parse_list_page(body: object) -> tuple[list[ListedTask], int, int]:
    """One list answer -> (its tasks, `total`, `total_page`). Entries without a task id are skipped."""
    if not isinstance(body, Mapping) or not isinstance(body.get("data"), list):
        raise WanError(BAD_RESPONSE, "list response has no data array")
    tasks = [
        ListedTask(
            task_id=item["task_id"],
            status=TaskStatus.parse(item.get("status")),
            model=_str_or_none(item.get("model_name")),
            created_at=_epoch_ms(item.get("gmt_create")),
            api_key_id=_str_or_none(item.get("api_key_id")),
        )
        for item in body["data"]
        if isinstance(item, Mapping) and isinstance(item.get("task_id"), str) and item["task_id"]
    ]
    total = body.get("total")
    pages = body.get("total_page")
    return (
        tasks,
        int(total) if isinstance(total, int) else len(tasks),
        int(pages) if isinstance(pages, int) else 1,
    )
