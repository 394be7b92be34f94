"""The emulator: one aiohttp application serving the DashScope API, the OSS hosts and a control API."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import Counter
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web

from bot.sandbox.api import API_PREFIX, DROPPED, MAX_BODY, ApiRoutes, drop_connection
from bot.sandbox.config import EmulatorConfig
from bot.sandbox.errors import (
    ApiError,
    error_response,
    json_response,
    oss_error_response,
    standard_message,
)
from bot.sandbox.execution import TaskExecutor
from bot.sandbox.faults import FaultQueue, FaultRule
from bot.sandbox.results import RESULTS_PATH, ResultStore
from bot.sandbox.tasks import EmulatedTask, TaskScheduler, TaskStatus
from bot.sandbox.upload import UPLOAD_PATH, UploadStore

log = logging.getLogger(__name__)

CONTROL_PREFIX = "/sandbox"
_ANY_HOST = {"", "0.0.0.0", "::"}


def _stage(name: str) -> TaskStatus:
    stage = TaskStatus(name.upper())
    if stage not in (TaskStatus.PENDING, TaskStatus.RUNNING):
        raise ValueError(f"tasks can be held only at pending or running, not {name!r}")
    return stage


class Emulator:
    """A local stand-in for DashScope's Wan 2.5 image-editing API. See the package docstring."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.tasks: dict[str, EmulatedTask] = {}
        self.created_count = 0
        # (monotonic arrival time, method, path, HTTP status; 0 = connection dropped) of every request.
        self.request_log: list[tuple[float, str, str, int]] = []
        self.faults = FaultQueue()
        access_key_id = "LTAI5t" + secrets.token_hex(8)
        self.uploads = UploadStore(
            access_key_id,
            self.config.policy_ttl_seconds,
            self.config.upload_ttl_seconds,
            self.config.max_upload_mb,
        )
        self.results = ResultStore(access_key_id)
        self._http: aiohttp.ClientSession | None = None
        executor = TaskExecutor(
            self.config, self.uploads, self.results, lambda: self._http, lambda: self.origin
        )
        self.scheduler = TaskScheduler(self.config, executor, self._pulse)
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # ---- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("emulator already started")
        app = web.Application(middlewares=[self._middleware], client_max_size=MAX_BODY)
        ApiRoutes(self).register(app)
        app.router.add_post(UPLOAD_PATH, self._upload)
        app.router.add_get(RESULTS_PATH + "/{name}", self._download)
        app.router.add_post(CONTROL_PREFIX + "/faults", self._control_add_fault)
        app.router.add_delete(CONTROL_PREFIX + "/faults", self._control_clear_faults)
        app.router.add_get(CONTROL_PREFIX + "/state", self._control_state)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.config.host, self.config.port).start()
        except OSError:
            await runner.cleanup()  # e.g. the port is taken
            raise
        self._runner = runner
        self._port = runner.addresses[0][1]
        if self.config.fetch_inputs:
            timeout = aiohttp.ClientTimeout(total=self.config.fetch_timeout_seconds)
            self._http = aiohttp.ClientSession(timeout=timeout)
        log.info("DashScope emulator listening at %s", self.base_url)

    async def close(self) -> None:
        await self.scheduler.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("emulator not started")
        return self._port

    @property
    def origin(self) -> str:
        """`http://host:port`, the root of the result and upload URLs."""
        host = self.config.advertised_host or self.config.host
        if host in _ANY_HOST:
            host = "127.0.0.1"
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The DashScope base URL to give a client, like `https://dashscope-intl.aliyuncs.com/api/v1`."""
        return self.origin + API_PREFIX

    # ---- state and test helpers -------------------------------------------------------------------

    def add_fault(self, rule: FaultRule) -> None:
        self.faults.add(rule)

    def clear_faults(self) -> None:
        self.faults.clear()

    def hold(self, stage: str = "running") -> None:
        """Keep tasks at `stage` ("pending" or "running") until `release(stage)`, so a test can act
        while a task is surely in that state instead of racing a fixed running time."""
        self.scheduler.hold(_stage(stage))

    def release(self, stage: str = "running") -> None:
        """Let the tasks held at `stage` go on (a held RUNNING task finishes at once)."""
        self.scheduler.release(_stage(stage))

    def add_task(self, task: EmulatedTask) -> None:
        self._forget_old_tasks()
        self.tasks[task.task_id] = task
        self.created_count += 1
        self.scheduler.submit(task)
        self._pulse()

    def _forget_old_tasks(self) -> None:
        # Expired tasks answer UNKNOWN; drop them from memory an hour later (a day-long sandbox run).
        horizon = self.config.task_ttl_seconds + 3600.0
        for task_id in [t.task_id for t in self.tasks.values() if t.expired(horizon)]:
            del self.tasks[task_id]

    def _pulse(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(self, predicate: Any, timeout: float = 5.0) -> None:
        """Resolve once `predicate()` is true; it is re-checked on every task change."""
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._changed.wait()

    async def wait_for_task_count(self, n: int, timeout: float = 5.0) -> None:
        await self.wait_for(lambda: self.created_count >= n, timeout)

    async def wait_for_status(
        self,
        task_id: str,
        *statuses: str,
        timeout: float = 5.0,
    ) -> EmulatedTask:
        """Wait until the task exists and is in one of `statuses` (default: any final state)."""
        wanted = set(statuses) or {"SUCCEEDED", "FAILED", "CANCELED"}
        await self.wait_for(
            lambda: task_id in self.tasks and self.tasks[task_id].status.value in wanted, timeout
        )
        return self.tasks[task_id]

    def state(self) -> dict[str, Any]:
        counts = Counter(task.status.value for task in self.tasks.values())
        return {
            "created_count": self.created_count,
            "tasks": {
                status.value: counts.get(status.value, 0)
                for status in TaskStatus
                if status is not TaskStatus.UNKNOWN
            },
            "pending_faults": [rule.to_json() for rule in self.faults.pending()],
            "uploads": len(self.uploads.objects),
            "results": len(self.results),
        }

    # ---- HTTP plumbing ----------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        arrived = time.monotonic()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except ApiError as exc:
            status = exc.status
            return error_response(exc.status, exc.code, exc.message)
        except web.HTTPRequestEntityTooLarge:
            status = 413
            return error_response(413, "BadRequest.TooLarge", "Request body is too large.")
        except web.HTTPException as exc:
            status = exc.status
            raise
        except Exception:
            log.exception("emulator error on %s %s", request.method, request.path)
            return error_response(500, "InternalError")
        finally:
            self.request_log.append(
                (arrived, request.method, request.path, 0 if request.get(DROPPED) else status)
            )

    async def _upload(self, request: web.Request) -> web.Response:
        rule = self.faults.take("upload")
        if rule is not None and not rule.drop:
            return oss_error_response(
                rule.status, rule.code, rule.message or standard_message(rule.code)
            )
        response = await self.uploads.handle_post(request)
        if rule is not None:
            return drop_connection(request)
        return response

    async def _download(self, request: web.Request) -> web.StreamResponse:
        rule = self.faults.take("download")
        if rule is not None and not rule.drop:
            return oss_error_response(
                rule.status, rule.code, rule.message or standard_message(rule.code)
            )
        response = self.results.serve(request)
        if rule is not None:
            return drop_connection(request)
        return response

    async def _control_add_fault(self, request: web.Request) -> web.Response:
        try:
            data = await request.json()
            items = data if isinstance(data, list) else [data]
            rules = [FaultRule.from_json(item) for item in items]
        except (ValueError, TypeError) as exc:
            return json_response({"error": str(exc)}, 400)
        for rule in rules:
            self.add_fault(rule)
        return json_response({"ok": True, "pending_faults": len(self.faults.pending())})

    async def _control_clear_faults(self, request: web.Request) -> web.Response:
        self.clear_faults()
        return json_response({"ok": True, "pending_faults": 0})

    async def _control_state(self, request: web.Request) -> web.Response:
        return json_response(self.state())
