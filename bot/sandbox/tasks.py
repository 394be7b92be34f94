"""Task state and the scheduler: FIFO queue, `max_running` slots, PENDING -> RUNNING -> final.

Timers are asyncio sleeps on the emulator's loop; nothing blocks. Cancel works only while a task is PENDING
(queued, or holding a slot during its `pending_seconds`), as on the real service.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from bot.sandbox.clock import wan_time
from bot.sandbox.config import EmulatorConfig
from bot.sandbox.errors import standard_message
from bot.sandbox.faults import PARTIAL_CODE, TaskFault
from bot.sandbox.validation import CreateParams

log = logging.getLogger(__name__)

# Appended to prompts when prompt_extend is on, standing in for the service's LLM rewrite.
PROMPT_EXTENSION = (
    " Rendered in rich detail with natural lighting, consistent perspective and realistic textures, "
    "keeping the subject and composition of the input image."
)
IMAGINE_EXTENSION = (
    " Rendered in rich detail with natural lighting, a balanced composition and realistic textures."
)


class TaskStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    UNKNOWN = "UNKNOWN"


@dataclass(eq=False)
class EmulatedTask:
    """Everything the emulator knows about one task. Times are Unix (`*_at`) or monotonic (`*_mono`)."""

    task_id: str
    request: dict[str, Any]  # the create body as received
    params: CreateParams
    api_key_id: str
    request_id: str  # of the create request
    fault: TaskFault
    submitted_at: float
    submitted_mono: float
    status: TaskStatus = TaskStatus.PENDING
    scheduled_at: float | None = None
    ended_at: float | None = None
    running_seconds: float | None = None  # chosen when it starts running
    code: str | None = None
    message: str | None = None
    results: list[dict[str, str]] = field(default_factory=list)
    image_count: int = 0

    def expired(self, ttl: float) -> bool:
        return time.monotonic() - self.submitted_mono >= ttl

    def _metrics(self) -> dict[str, int]:
        n = self.params.n
        if self.status is TaskStatus.FAILED:
            return {"TOTAL": n, "SUCCEEDED": 0, "FAILED": n}
        return {"TOTAL": n, "SUCCEEDED": self.image_count, "FAILED": n - self.image_count}

    def output(self) -> dict[str, Any]:
        """The `output` object of a query answer for the current state."""
        out: dict[str, Any] = {"task_id": self.task_id, "task_status": self.status.value}
        out["submit_time"] = wan_time(self.submitted_at)
        if self.scheduled_at is not None:
            out["scheduled_time"] = wan_time(self.scheduled_at)
        if self.ended_at is not None:
            out["end_time"] = wan_time(self.ended_at)
        if self.status is TaskStatus.RUNNING:
            out["task_metrics"] = {"TOTAL": self.params.n, "SUCCEEDED": 0, "FAILED": 0}
        elif self.status is TaskStatus.SUCCEEDED:
            out["results"] = self.results
            out["task_metrics"] = self._metrics()
        elif self.status is TaskStatus.FAILED:
            out["code"] = self.code
            out["message"] = self.message
            out["task_metrics"] = self._metrics()
        return out

    def query_body(self, request_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {"request_id": request_id, "output": self.output()}
        if self.status is TaskStatus.SUCCEEDED:
            body["usage"] = {"image_count": self.image_count}
        return body


@dataclass
class Outcome:
    """What running a task produced. `immediate` ends it at once instead of at its running deadline."""

    failure: tuple[str, str] | None = None
    immediate: bool = False
    pngs: list[bytes] = field(default_factory=list)
    failed_images: int = 0


class Executor(Protocol):
    async def prepare(self, task: EmulatedTask) -> Outcome: ...

    def publish(self, png: bytes) -> str: ...


class TaskScheduler:
    def __init__(
        self, config: EmulatorConfig, executor: Executor, on_change: Callable[[], None]
    ) -> None:
        self._cfg = config
        self._executor = executor
        self._on_change = on_change
        self._queue: deque[EmulatedTask] = deque()
        self._active: dict[EmulatedTask, asyncio.Task[None]] = {}  # tasks holding a running slot
        self._closing = False
        # Gates a test closes to keep tasks at a stage until it says so (None = open).
        self._gates: dict[TaskStatus, asyncio.Event | None] = {
            TaskStatus.PENDING: None,
            TaskStatus.RUNNING: None,
        }

    @property
    def running_count(self) -> int:
        return sum(1 for task in self._active if task.status is TaskStatus.RUNNING)

    @property
    def in_progress(self) -> int:
        """Tasks submitted and not yet final: the number the service's concurrency limit counts."""
        return len(self._active) + sum(1 for t in self._queue if t.status is TaskStatus.PENDING)

    def hold(self, stage: TaskStatus) -> None:
        """Keep tasks at `stage` until `release(stage)`: PENDING = a task that got a slot does not
        start running; RUNNING = a running task does not finish, however short its running time."""
        if self._gates[stage] is None:
            self._gates[stage] = asyncio.Event()

    def release(self, stage: TaskStatus) -> None:
        gate = self._gates[stage]
        self._gates[stage] = None
        if gate is not None:
            gate.set()

    async def _pass(self, stage: TaskStatus) -> None:
        gate = self._gates[stage]
        if gate is not None:
            await gate.wait()

    def submit(self, task: EmulatedTask) -> None:
        self._queue.append(task)
        self._pump()

    def cancel(self, task: EmulatedTask) -> bool:
        """Cancel a PENDING task; False if it is in any other state."""
        if task.status is not TaskStatus.PENDING:
            return False
        task.status = TaskStatus.CANCELED
        task.ended_at = time.time()
        if task in self._queue:
            self._queue.remove(task)
        handle = self._active.pop(task, None)
        if handle is not None:
            handle.cancel()  # still in its pending_seconds: give the slot to the next task
            self._pump()
        self._on_change()
        return True

    def _pump(self) -> None:
        while not self._closing and self._queue and len(self._active) < self._cfg.max_running:
            task = self._queue.popleft()
            if task.status is TaskStatus.PENDING:
                self._active[task] = asyncio.create_task(
                    self._lifecycle(task), name=f"wan-task-{task.task_id}"
                )

    async def _lifecycle(self, task: EmulatedTask) -> None:
        try:
            await asyncio.sleep(self._cfg.pending_seconds)
            await self._pass(TaskStatus.PENDING)
            loop = asyncio.get_running_loop()
            task.status = TaskStatus.RUNNING
            task.scheduled_at = time.time()
            task.running_seconds = self._running_time(task)
            deadline = loop.time() + task.running_seconds
            self._on_change()
            outcome = await self._prepare(task)
            if not outcome.immediate:
                await asyncio.sleep(max(0.0, deadline - loop.time()))
                await self._pass(TaskStatus.RUNNING)
            self._finish(task, outcome)
        finally:
            self._active.pop(task, None)
            self._pump()

    def _running_time(self, task: EmulatedTask) -> float:
        if task.fault.running_seconds is not None:
            return task.fault.running_seconds
        try:
            return max(0.0, self._cfg.running_time(task))
        except Exception:  # a test's callable went wrong: don't leave the task RUNNING forever
            log.exception("running_seconds callable failed for task %s", task.task_id)
            return 0.0

    async def _prepare(self, task: EmulatedTask) -> Outcome:
        try:
            return await self._executor.prepare(task)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("emulated task %s crashed", task.task_id)
            return Outcome(
                failure=("InternalError", standard_message("InternalError")), immediate=True
            )

    def _finish(self, task: EmulatedTask, outcome: Outcome) -> None:
        task.ended_at = time.time()
        if outcome.failure is not None or not outcome.pngs:
            task.status = TaskStatus.FAILED
            task.code, task.message = outcome.failure or (
                "InternalError",
                standard_message("InternalError"),
            )
        else:
            prompt = task.params.prompt
            for png in outcome.pngs:
                entry = {"orig_prompt": prompt}
                if task.params.prompt_extend:
                    extension = IMAGINE_EXTENSION if task.params.from_text else PROMPT_EXTENSION
                    entry["actual_prompt"] = prompt.rstrip().rstrip(".") + "." + extension
                entry["url"] = self._executor.publish(png)
                task.results.append(entry)
            for _ in range(outcome.failed_images):
                task.results.append(
                    {"code": PARTIAL_CODE, "message": standard_message(PARTIAL_CODE)}
                )
            task.image_count = len(outcome.pngs)
            task.status = TaskStatus.SUCCEEDED
        log.info("emulated task %s %s", task.task_id, task.status.value)
        self._on_change()

    async def close(self) -> None:
        self._closing = True
        handles = list(self._active.values())
        for handle in handles:
            handle.cancel()
        await asyncio.gather(*handles, return_exceptions=True)
        self._queue.clear()
