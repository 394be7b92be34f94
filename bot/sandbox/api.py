"""The DashScope routes under `/api/v1`: create, query, cancel, list tasks and getPolicy.

Every route checks, in order: Bearer key (401) -> injected fault -> rate limit (429) -> the request itself.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Protocol

from aiohttp import web

from bot.sandbox.config import IMAGINE_MODEL, MODEL, EmulatorConfig
from bot.sandbox.errors import ApiError, json_response, new_request_id
from bot.sandbox.faults import FaultQueue, FaultRule, PromptTags, TaskFault
from bot.sandbox.inputs import DOWNLOAD_FAILED
from bot.sandbox.listing import list_tasks
from bot.sandbox.ratelimit import TokenBucket
from bot.sandbox.tasks import EmulatedTask, TaskScheduler, TaskStatus
from bot.sandbox.upload import UPLOAD_PATH, UploadStore
from bot.sandbox.validation import parse_body, validate_create


class Emulator(Protocol):
    """What the routes use of the emulator (`bot.sandbox.server.Emulator`), which imports them."""

    config: EmulatorConfig
    faults: FaultQueue
    tasks: dict[str, EmulatedTask]
    scheduler: TaskScheduler
    uploads: UploadStore

    @property
    def origin(self) -> str: ...

    def add_task(self, task: EmulatedTask) -> None: ...


API_PREFIX = "/api/v1"
CREATE_PATH = "/services/aigc/image2image/image-synthesis"
IMAGINE_PATH = "/services/aigc/text2image/image-synthesis"
NO_KEY = "No API-key provided."
BAD_KEY = "Invalid API-key provided."
SYNC_DENIED = "current user api does not support synchronous calls"
CANCEL_DENIED = (
    "Failed to cancel the task: only PENDING tasks can be canceled, and this task is {status}."
)
MODEL_DENIED = "Model access denied."
MAX_BODY = 64 * 1024 * 1024  # 3 images as ~13.4 MB base64 data URIs, plus room


def api_key_id(key: str) -> str:
    """A stable id for a key, for list answers; never the key itself."""
    return "ak-" + hashlib.sha256(key.encode()).hexdigest()[:20]


DROPPED = web.RequestKey("dropped", bool)


def drop_connection(request: web.Request) -> web.Response:
    """Close the connection with no response (the work was done; the client just never hears of it)."""
    request[DROPPED] = True
    if request.transport is not None:
        request.transport.close()
    return web.Response()  # never sent: the transport is closed


class ApiRoutes:
    def __init__(self, emulator: Emulator) -> None:
        self._emu = emulator
        cfg = emulator.config
        self._submit_bucket = TokenBucket(cfg.submit_rps)
        self._query_bucket = TokenBucket(cfg.query_qps)
        self._policy_bucket = TokenBucket(cfg.policy_qps)

    def register(self, app: web.Application) -> None:
        routes = [
            ("POST", CREATE_PATH, self.create),
            ("POST", IMAGINE_PATH, self.create_from_text),
            ("GET", "/tasks/{task_id}", self.get_task),
            ("POST", "/tasks/{task_id}/cancel", self.cancel),
            ("GET", "/tasks", self.list),
            ("GET", "/uploads", self.get_policy),
        ]
        for method, path, handler in routes:
            # The SDK's aio client asks for `/tasks/{id}/`: the service accepts a trailing slash.
            for variant in (path, path + "/"):
                app.router.add_route(method, API_PREFIX + variant, handler)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self.bad_url)

    def _auth(self, request: web.Request) -> str:
        scheme, _, key = request.headers.get("Authorization", "").strip().partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise ApiError(401, "InvalidApiKey", NO_KEY)
        cfg = self._emu.config
        if key in cfg.other_region_keys or (cfg.api_keys and key not in cfg.api_keys):
            raise ApiError(401, "InvalidApiKey", BAD_KEY)
        return key

    def _guard(self, request: web.Request, op: str, bucket: TokenBucket) -> FaultRule | None:
        """Auth, fault and rate checks of the query routes; returns a pending drop rule."""
        self._auth(request)
        return self._admit(op, bucket)

    def _admit(self, op: str, bucket: TokenBucket) -> FaultRule | None:
        """Injected fault (raised, or returned if it is a drop), then the rate limit."""
        rule = self._emu.faults.take(op)
        if rule is not None and not rule.drop and rule.task_status is None:
            raise ApiError(rule.status, rule.code, rule.message)
        if not bucket.try_acquire():
            raise ApiError(429, "Throttling.RateQuota")
        return rule

    async def create(self, request: web.Request) -> web.Response:
        return await self._create(request, MODEL)

    async def create_from_text(self, request: web.Request) -> web.Response:
        return await self._create(request, IMAGINE_MODEL)

    async def _create(self, request: web.Request, route_model: str) -> web.Response:
        key = self._auth(request)
        if request.headers.get("X-DashScope-Async", "").strip().lower() != "enable":
            raise ApiError(403, "AccessDenied", SYNC_DENIED)
        rule = self._admit("create", self._submit_bucket)
        if (
            self._emu.config.over_capacity == "refuse"
            and self._emu.scheduler.in_progress >= self._emu.config.max_running
        ):
            raise ApiError(429, "Throttling")
        body = parse_body(await request.read())
        # Access to the model is decided before the body is looked at (our choice: the order is
        # undocumented), so a create with an empty input tells whether a model may be used.
        if body.get("model") in self._emu.config.denied_models:
            raise ApiError(403, "Model.AccessDenied", MODEL_DENIED)
        params = validate_create(body, route_model)
        if (
            params.uses_oss
            and request.headers.get("X-DashScope-OssResourceResolve", "").lower() != "enable"
        ):
            raise ApiError(400, "InvalidParameter.DataInspection", DOWNLOAD_FAILED)

        fault = TaskFault()
        task_rule = self._emu.faults.take("task")
        if task_rule is not None:
            fault.merge_rule(task_rule)
        tags = PromptTags.parse(body["input"]["prompt"])
        tags.apply(fault, params.n)
        if tags.throttle:
            self._emu.faults.add(FaultRule(op="create", status=429, code="Throttling.RateQuota"))

        request_id = new_request_id()
        task = EmulatedTask(
            task_id=str(uuid.uuid4()),
            request=body,
            params=params,
            api_key_id=api_key_id(key),
            request_id=request_id,
            fault=fault,
            submitted_at=time.time(),
            submitted_mono=time.monotonic(),
        )
        self._emu.add_task(task)
        if rule is not None:
            return drop_connection(request)
        return json_response(
            {
                "output": {"task_status": "PENDING", "task_id": task.task_id},
                "request_id": request_id,
            }
        )

    def _lookup(self, task_id: str) -> EmulatedTask | None:
        task = self._emu.tasks.get(task_id)
        if task is None or task.expired(self._emu.config.task_ttl_seconds):
            return None
        return task

    async def get_task(self, request: web.Request) -> web.Response:
        rule = self._guard(request, "get", self._query_bucket)
        task_id = request.match_info["task_id"]
        task = self._lookup(task_id)
        request_id = new_request_id()
        if task is None:
            body = {
                "request_id": request_id,
                "output": {"task_id": task_id, "task_status": "UNKNOWN"},
            }
        else:
            body = task.query_body(request_id)
        if rule is not None and rule.task_status is not None:
            body["output"]["task_status"] = rule.task_status
            return json_response(body)
        return drop_connection(request) if rule is not None else json_response(body)

    async def cancel(self, request: web.Request) -> web.Response:
        rule = self._guard(request, "cancel", self._query_bucket)
        task_id = request.match_info["task_id"]
        task = self._lookup(task_id)
        if task is None:
            raise ApiError(404, "NotFound", f"The task {task_id} does not exist or has expired.")
        if not self._emu.scheduler.cancel(task):
            raise ApiError(
                400, "UnsupportedOperation", CANCEL_DENIED.format(status=task.status.value)
            )
        body = {
            "request_id": new_request_id(),
            "output": {"task_id": task.task_id, "task_status": TaskStatus.CANCELED.value},
        }
        return drop_connection(request) if rule is not None else json_response(body)

    async def list(self, request: web.Request) -> web.Response:
        rule = self._guard(request, "list", self._query_bucket)
        cfg = self._emu.config
        answer = list_tasks(
            request.query, self._emu.tasks.values(), cfg.region_id, cfg.task_ttl_seconds
        )
        body = {"request_id": new_request_id(), **answer}
        return drop_connection(request) if rule is not None else json_response(body)

    async def get_policy(self, request: web.Request) -> web.Response:
        rule = self._guard(request, "policy", self._policy_bucket)
        if request.query.get("action") != "getPolicy":
            raise ApiError(400, "InvalidParameter", "The parameter `action` must be getPolicy.")
        model = request.query.get("model", "").strip()
        if not model:
            raise ApiError(
                400, "InvalidParameter", "Required parameter `model` missing from request."
            )
        data = self._emu.uploads.issue_policy(model, self._emu.origin + UPLOAD_PATH)
        body = {"request_id": new_request_id(), "data": data}
        return drop_connection(request) if rule is not None else json_response(body)

    async def bad_url(self, request: web.Request) -> web.Response:
        # What the service says for a path it doesn't know.
        raise ApiError(400, "InvalidParameter", "url error, please check url!")
