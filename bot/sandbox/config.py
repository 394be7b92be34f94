"""Settings of the DashScope emulator; the defaults are fast test timings, not the real service's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

MODEL = "wan2.5-i2i-preview"
IMAGINE_MODEL = "wan2.5-t2i-preview"
REGION_IDS: dict[str, str] = {"singapore": "ap-southeast-1", "beijing": "cn-beijing"}


@dataclass
class EmulatorConfig:
    """Knobs of one emulator instance.

    The real service's numbers are the defaults for the limits; the timings are short so tests
    run fast (the real service takes 30-120 s per task). A rate of `None` switches that limit off.
    """

    api_keys: set[str] = field(default_factory=set)  # accepted keys; empty = any non-empty key
    region: Literal["singapore", "beijing"] = "singapore"
    other_region_keys: set[str] = field(default_factory=set)  # keys of the other region: always 401
    pending_seconds: float = 0.05  # PENDING time once a running slot is free
    # A number, or a function of the task (`bot.sandbox.tasks.EmulatedTask`, which imports this module).
    running_seconds: float | Callable[[Any], float] = 0.2
    max_running: int = 5  # tasks in progress at once
    # A create while `max_running` tasks are in progress: the real service's answer is undocumented,
    # so both readings are here. "queue": the task waits PENDING
    # in FIFO order for a slot; "refuse": the create gets 429 `Throttling` and no task is made.
    over_capacity: Literal["queue", "refuse"] = "queue"
    submit_rps: float | None = 5.0  # create-task rate
    query_qps: float | None = 20.0  # shared by GET task, cancel and list
    policy_qps: float | None = 100.0  # getPolicy rate
    result_ttl_seconds: float = 86400.0  # result URLs stop working after this (from task end)
    task_ttl_seconds: float = 86400.0  # task ids answer UNKNOWN after this (from submission)
    fetch_inputs: bool = True  # download http(s) inputs and check them like the real service
    fetch_timeout_seconds: float = 10.0
    # Output area when the request has no `size`; the real service makes ~1280*1280 pixels. Smaller keeps
    # tests fast. An explicit `size` is always honoured exactly.
    result_area: int = 512 * 512
    policy_ttl_seconds: float = 300.0  # getPolicy expire_in_seconds
    upload_ttl_seconds: float = 48 * 3600.0  # oss:// objects live 48 h
    max_upload_mb: int = 100
    # Models this account may not use: a create naming one gets 403 `Model.AccessDenied` (what a
    # sub-workspace without the model's grant is told), so `python -m bot check` can be tried.
    denied_models: set[str] = field(default_factory=set)
    host: str = "127.0.0.1"
    port: int = 0  # 0 = pick a free port
    # Host name put into result URLs and upload_host; defaults to `host` (127.0.0.1 when binding 0.0.0.0).
    advertised_host: str | None = None

    def __post_init__(self) -> None:
        if self.region not in REGION_IDS:
            raise ValueError(f"region must be one of {sorted(REGION_IDS)}, not {self.region!r}")
        if self.max_running < 1:
            raise ValueError("max_running must be at least 1")
        if self.over_capacity not in ("queue", "refuse"):
            raise ValueError(
                f"over_capacity must be 'queue' or 'refuse', not {self.over_capacity!r}"
            )

    @property
    def region_id(self) -> str:
        return REGION_IDS[self.region]

    def running_time(self, task: Any) -> float:
        value = self.running_seconds
        return float(value(task)) if callable(value) else float(value)
