"""Async client for Wan 2.5 image editing and text-to-image over DashScope's HTTP API
(docs/text-to-image.md for the latter). Both models share the task API, the key and the account's limits.

Retry rules, because creates are not idempotent (every POST makes a new, billable task):
- create: at most `create_attempts` (4) POSTs for one request, retried only when the server answered
  with 429 or a 5xx carrying DashScope's error body (no task was made), or when the connection could
  not even be opened. If the request may have been sent and no answer came back (timeout, reset, a
  5xx without DashScope's body), it raises `CreateOutcomeUnknown` and never retries. The job runner
  does not retry creates on top of this: this is the one create policy.
- query, cancel, list: safe to repeat; retried on 429, 5xx, timeouts and network errors. They share
  one rate limiter (the account's query limit).
- result downloads and uploads: retried on transient errors.
All of them go through one tenacity policy (`retry.policy`): exponential backoff with full jitter
and a cap, honouring Retry-After.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Literal, Self

import aiohttp
from tenacity import AsyncRetrying

from bot.wan.body import StreamedBody
from bot.wan.errors import (
    BAD_RESPONSE,
    DOWNLOAD_FAILED,
    NETWORK_ERROR,
    REQUEST_TIMEOUT,
    RESULT_EXPIRED,
    RESULT_TOO_LARGE,
    RETRYABLE_STATUSES,
    UPLOAD_FAILED,
    CreateOutcomeUnknown,
    WanError,
    error_from_response,
    redact,
)
from bot.wan.models import (
    WAN_TZ,
    CreatedTask,
    EditRequest,
    ImagineRequest,
    ListedTask,
    TaskListing,
    TaskResult,
    TaskStatus,
    parse_created,
    parse_list_page,
    parse_task,
)
from bot.wan.ratelimit import Limiter, RateLimiter
from bot.wan.retry import Backoff, parse_retry_after, policy
from bot.wan.scheduler import OnUpdate, PollConfig, PollScheduler
from bot.wan.transport import FormBuilder, make_transport

log = logging.getLogger(__name__)

DEFAULT_MODEL = "wan2.5-i2i-preview"
IMAGINE_MODEL = "wan2.5-t2i-preview"
CREATE_PATH = "/services/aigc/image2image/image-synthesis"
IMAGINE_PATH = "/services/aigc/text2image/image-synthesis"
# A text-to-image create body: a prompt of at most 2000 characters (up to 4 bytes each in UTF-8
# JSON escapes) and a few parameters.
IMAGINE_BODY_MAX = 64 * 1024
MAX_RESULT_BYTES = 50 * 1024 * 1024
# Slowest upload speed we allow for before timing out a create that carries inline images.
_MIN_UPLOAD_BYTES_PER_S = 512 * 1024
# The largest create body: 3 images of 10 MB as base64 data URIs, and the JSON around them.
_MAX_CREATE_BYTES = 3 * 14 * 1024 * 1024
# The list API's widest window and the pages read for one window at most.
LIST_MAX_WINDOW = timedelta(hours=24)
LIST_PAGE_SIZE = 100
LIST_MAX_PAGES = 5
_LIST_TIME = "%Y%m%d%H%M%S"
# A 400 that names the model as the problem ("Model not exist."), not the request.
_MODEL_UNKNOWN = re.compile(r"model\b.{0,40}?\bnot (?:exist|found|supported)", re.I | re.S)


class WanClient:
    """One aiohttp session, one rate limiter and one poll scheduler for everything in flight."""

    def __init__(
        self,
        api_key: str,
        base_url: str,
        *,
        model: str = DEFAULT_MODEL,
        imagine_model: str = IMAGINE_MODEL,
        transport: Literal["url", "base64", "upload"] = "base64",
        query_qps: float = 10.0,
        submit_rps: float = 5.0,
        request_timeout: float = 30.0,
        max_retries: int = 5,
        create_attempts: int = 4,
        session: aiohttp.ClientSession | None = None,
        retry_base: float = 0.5,
        retry_cap: float = 20.0,
        poll_config: PollConfig | None = None,
        poll_timeout: float = 10.0,
        query_limiter: Limiter | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        query_gate: Callable[[], Awaitable[None]] | None = None,
        submit_gate: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        # The gates: limits shared with other bot processes on the same account (see RateLimiter).
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.imagine_model = imagine_model
        self.request_timeout = request_timeout
        self.poll_timeout = min(poll_timeout, request_timeout)
        self.max_retries = max_retries
        # Every create POST may make a billable task: at most this many for one request, in all.
        self.create_attempts = create_attempts
        self._session = session
        self._own_session = session is None
        self._create_session: aiohttp.ClientSession | None = None
        self._sleep = sleep
        self.backoff = Backoff(base=retry_base, cap=retry_cap)
        self.limiter: Limiter = query_limiter or RateLimiter(
            query_qps, clock=clock, sleep=sleep, gate=query_gate
        )
        self.submit_limiter = RateLimiter(submit_rps, clock=clock, sleep=sleep, gate=submit_gate)
        self.transport = make_transport(transport, self)
        self.scheduler = PollScheduler(
            self._poll_once, self.limiter, config=poll_config, backoff=self.backoff, clock=clock
        )

    def __repr__(self) -> str:  # never the key
        return f"WanClient(base_url={self.base_url!r}, model={self.model!r}, transport={self.transport.name!r})"

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.request_timeout)
            )
        if self._create_session is None:
            # Creates go over a fresh connection each time: on a pooled keep-alive connection the
            # server may have just closed, a reset would be indistinguishable from a lost answer,
            # and every such create would end as "outcome unknown". Creates are rare; a handshake
            # each is cheap insurance.
            self._create_session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True)
            )

    async def close(self) -> None:
        await self.scheduler.close()
        if self._create_session is not None:
            await self._create_session.close()
            self._create_session = None
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("WanClient.start() was not called")
        return self._session

    # ---- public API ------------------------------------------------------------------------

    async def create_task(
        self,
        req: EditRequest | ImagineRequest,
        *,
        before_send: Callable[[], Awaitable[None]] | None = None,
        after_refusal: Callable[[], None] | None = None,
    ) -> CreatedTask:
        """Submit an edit, or a text-to-image task (`ImagineRequest`). Raises WanError;
        `CreateOutcomeUnknown` if the answer never arrived.

        `before_send` is awaited right before each attempt is sent, after its rate-limit wait (the
        job runner notes there that the task may now exist, or stops a cancelled job by raising);
        `after_refusal` is called when an answer proved no task was made and another attempt will
        follow (the job is then only waiting again)."""
        extra_headers: Mapping[str, str] = {}
        if isinstance(req, ImagineRequest):
            body: dict[str, Any] = {
                "model": self.imagine_model,
                "input": {"prompt": req.prompt},
                "parameters": req.parameters(),
            }
            url = self.base_url + IMAGINE_PATH
        else:
            if not 1 <= len(req.images) <= 3:
                raise WanError(
                    "InvalidParameter", "between 1 and 3 images are needed", retryable=False
                )
            prepared = await self.transport.prepare(req.images)
            extra_headers = prepared.headers
            body = {
                "model": self.model,
                "input": {"prompt": req.prompt, "images": prepared.images},
                "parameters": req.parameters(),
            }
            url = self.base_url + CREATE_PATH
        if req.negative_prompt:
            body["input"]["negative_prompt"] = req.negative_prompt
        payload = StreamedBody(body)
        headers = {
            **self._auth(),
            "Content-Type": "application/json",
            "Content-Length": str(len(payload)),
            "X-DashScope-Async": "enable",
            **extra_headers,
        }
        timeout = self.create_timeout(len(payload))

        async def attempt() -> CreatedTask:
            # The account takes 5 creates per second: pace them here rather than
            # spend retries on 429s when many jobs start at once.
            await self.submit_limiter.acquire()
            if before_send is not None:
                await before_send()
            return await self._create_once(url, headers, payload, timeout)

        retry = policy(
            attempts=self.create_attempts,
            backoff=self.backoff,
            retry_if=_no_task_made,
            sleep=self._sleep,
            what="create",
            on_retry=None if after_refusal is None else lambda err, delay: after_refusal(),
        )
        return await retry(attempt)

    async def _create_once(
        self, url: str, headers: Mapping[str, str], payload: StreamedBody, timeout: float
    ) -> CreatedTask:
        """One create POST. Raises `CreateOutcomeUnknown` unless the answer settles the question;
        it carries the wall-clock span of the attempt, when Wan may have made the task."""
        sent_at = time.time()
        try:
            status, resp_headers, raw = await self._send(
                "POST",
                url,
                headers=headers,
                data=_yielding(payload.chunks()),
                limit=timeout,
                fresh=True,
            )
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # The connection never opened, so nothing was sent: safe to try again.
            raise WanError(
                NETWORK_ERROR, self._redact(type(exc).__name__), retryable=True
            ) from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.warning("create: no answer (%s); the task may exist", type(exc).__name__)
            raise CreateOutcomeUnknown(
                f"the request was sent but no answer came back ({type(exc).__name__})",
                span=(sent_at, time.time()),
            ) from None
        if status == 200:
            try:
                created = parse_created(_json(raw))
            except WanError:
                # Wan said yes but we cannot read the task id: it exists, out of reach.
                raise CreateOutcomeUnknown(
                    "unreadable answer", http_status=200, span=(sent_at, time.time())
                ) from None
            log.info("created task %s (request %s)", created.task_id, created.request_id)
            self.scheduler.note_created(created.task_id, created.status)
            return created
        err = self._error(status, resp_headers, raw)
        if status >= 500 and err.request_id is None:
            # Not DashScope's error body (a gateway's or a proxy's answer): the request may have
            # reached Wan and made a task.
            raise CreateOutcomeUnknown(
                f"answered HTTP {status} without DashScope's error body",
                http_status=status,
                span=(sent_at, time.time()),
            )
        raise err

    async def get_task(self, task_id: str) -> TaskResult:
        body = await self._query("GET", f"/tasks/{task_id}")
        return parse_task(body, task_id)

    async def cancel_task(self, task_id: str) -> TaskResult | None:
        """Cancel a PENDING task. The answer's shape is undocumented: a TaskResult if it has one."""
        body = await self._query("POST", f"/tasks/{task_id}/cancel")
        output = body.get("output")
        if isinstance(output, Mapping) and output.get("task_status"):
            return parse_task(body, task_id)
        return None

    async def list_tasks(
        self,
        start: datetime,
        end: datetime,
        *,
        status: TaskStatus | None = None,
        model: str | None = None,
        page_size: int = LIST_PAGE_SIZE,
        max_pages: int = LIST_MAX_PAGES,
    ) -> TaskListing:
        """The account's tasks created between `start` and `end` (aware datetimes), newest first,
        for `model` (default: this client's), reading at most `max_pages` pages.

        The bounds go out as `YYYYMMDDhhmmss` in Beijing time (the zone of every time the API
        shows), widened to whole seconds; entries are then kept only when their
        `gmt_create` (Unix milliseconds, no zone to misread) lies in the window. Each page is one
        query: it takes a token from the query limiter, like a poll."""
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("list_tasks needs timezone-aware bounds")
        if end < start or end - start > LIST_MAX_WINDOW:
            raise ValueError("the window must be between 0 and 24 hours long")
        model = model or self.model
        first = start.astimezone(WAN_TZ).replace(microsecond=0)
        last = end.astimezone(WAN_TZ)
        if last.microsecond:
            last = last.replace(microsecond=0) + timedelta(seconds=1)
        params = {
            "start_time": first.strftime(_LIST_TIME),
            "end_time": last.strftime(_LIST_TIME),
            "model_name": model,
            "page_size": str(page_size),
        }
        if status is not None:
            params["status"] = status.value
        found: list[ListedTask] = []
        total, page, pages = 0, 1, 1
        while page <= min(pages, max_pages):
            body = await self._query("GET", "/tasks", params={**params, "page_no": str(page)})
            tasks, total, pages = parse_list_page(body)
            found += tasks
            page += 1
        kept = [
            t
            for t in found
            if (t.model is None or t.model == model)
            and (t.created_at is None or start <= t.created_at <= end)
        ]
        return TaskListing(tasks=kept, total=total, complete=pages <= max_pages)

    def model_of(self, *, from_text: bool) -> str:
        """The model a create of this kind names (text-to-image or editing)."""
        return self.imagine_model if from_text else self.model

    def create_timeout(self, body_bytes: int | None = None) -> float:
        """Seconds a create POST of `body_bytes` may take before it is given up (None: the
        largest body there can be)."""
        size = _MAX_CREATE_BYTES if body_bytes is None else body_bytes
        return self.request_timeout + size / _MIN_UPLOAD_BYTES_PER_S

    async def wait(
        self,
        task_id: str,
        *,
        timeout: float | None = None,
        on_update: OnUpdate | None = None,
    ) -> TaskResult:
        """Return once the task is final; `on_update` is called on every status change (also the
        final one). Transient poll errors are retried until `timeout` (WanError `WaitTimeout`)."""
        return await self.scheduler.watch(task_id, on_update=on_update, timeout=timeout)

    def _download_retry(self) -> AsyncRetrying:
        """The one retry policy of result downloads (into memory or into a file)."""
        return policy(
            attempts=self.max_retries + 1,
            backoff=self.backoff,
            retry_if=_retryable,
            sleep=self._sleep,
            what="download",
        )

    async def download(self, url: str, *, max_bytes: int = MAX_RESULT_BYTES) -> bytes:
        """Fetch a result image (no credentials are sent: result URLs are pre-signed)."""
        retry = self._download_retry()
        return await retry(self._download_once, url, max_bytes)

    async def download_to(self, url: str, path: Path, *, max_bytes: int = MAX_RESULT_BYTES) -> int:
        """Fetch a result image into the file `path` (rewritten by each attempt); its size.

        The image is never whole in memory: a result of several MB goes to disk a megabyte at a
        time (written in a worker thread), so deliveries at once cost the bot disk, not RSS."""
        retry = self._download_retry()

        async def attempt() -> int:
            sink = _FileSink(path)
            try:
                await self._download_once(url, max_bytes, sink)
                return await sink.close()
            except BaseException:
                await sink.close(flush=False)
                raise

        return await retry(attempt)

    async def download_results(self, result: TaskResult) -> list[bytes]:
        """Every successful image of a task, fetched concurrently, in result order."""
        return list(await asyncio.gather(*(self.download(url) for url in result.urls)))

    async def check_key(self) -> None:
        """Prove the key works in this region without spending anything: querying a task id that
        does not exist answers 200 UNKNOWN for a good key and 401 for a bad one."""
        await self.get_task(str(uuid.uuid4()))

    async def check_model(self, *, from_text: bool = False) -> None:
        """Raise the WanError with which Wan refuses this key the model (editing, or text-to-image
        with `from_text`), e.g. 403 `Model.AccessDenied`; return when it may be used.

        Free: one create with an empty `input`, which no model can run, so Wan refuses it for that
        (400) once it has let the key at the model. Should Wan ever make a task of it anyway, the
        task is cancelled while it is PENDING, which costs nothing."""
        model = self.model_of(from_text=from_text)
        url = self.base_url + (IMAGINE_PATH if from_text else CREATE_PATH)
        payload = json.dumps({"model": model, "input": {}, "parameters": {"n": 1}}).encode()
        headers = {
            **self._auth(),
            "Content-Type": "application/json",
            "X-DashScope-Async": "enable",
        }
        await self.submit_limiter.acquire()
        try:
            status, resp_headers, raw = await self._send(
                "POST", url, headers=headers, data=payload, fresh=True
            )
        except TimeoutError:
            raise WanError(REQUEST_TIMEOUT, "no answer", retryable=True) from None
        except aiohttp.ClientError as exc:
            raise WanError(NETWORK_ERROR, type(exc).__name__, retryable=True) from None
        if status == 200:
            created = parse_created(_json(raw))
            log.warning("model check: Wan made task %s of an empty request; cancelling it", model)
            with contextlib.suppress(WanError):
                await self.cancel_task(created.task_id)
            return
        err = self._error(status, resp_headers, raw)
        refused_input = err.code.startswith(("BadRequest", "InvalidParameter"))
        if status == 400 and refused_input and not _MODEL_UNKNOWN.search(err.message):
            return  # past the model's door: only the (empty) request itself was refused
        raise err

    # ---- upload flow (transport.UploadApi) -------------------------------------------------

    async def get_upload_policy(self) -> Mapping[str, Any]:
        url = f"{self.base_url}/uploads"
        params = {"action": "getPolicy", "model": self.model}
        body = await self._retrying("GET", url, params=params, limited=False)
        data = body.get("data")
        if not isinstance(data, Mapping):
            raise WanError(BAD_RESPONSE, "upload policy response has no data")
        return data

    async def post_upload(self, host: str, build: FormBuilder) -> str:
        async def attempt() -> str:
            key, form = build()
            try:
                status, headers, raw = await self._send(
                    "POST", host, data=form, headers={"Accept": "application/json"}
                )
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise WanError(NETWORK_ERROR, type(exc).__name__, retryable=True) from None
            if 200 <= status < 300:
                return key
            raise self._error(status, headers, raw, default_code=UPLOAD_FAILED)

        retry = policy(
            attempts=self.max_retries + 1,
            backoff=self.backoff,
            retry_if=_retryable,
            sleep=self._sleep,
            what="upload",
        )
        return await retry(attempt)

    # ---- internals -------------------------------------------------------------------------

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"}

    def _redact(self, text: str) -> str:
        return redact(text, self._api_key)

    async def _send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: Any = None,
        params: Mapping[str, str] | None = None,
        limit: float | None = None,
        fresh: bool = False,
    ) -> tuple[int, Mapping[str, str], bytes]:
        total = limit or self.request_timeout
        client_timeout = aiohttp.ClientTimeout(total=total, sock_connect=min(10.0, total))
        session = self._create_session if fresh and self._create_session else self.session
        async with session.request(
            method,
            url,
            headers=headers,
            data=data,
            params=params,
            timeout=client_timeout,
            allow_redirects=False,
        ) as resp:
            return resp.status, resp.headers, await resp.read()

    async def _query(
        self, method: str, path: str, *, params: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        return await self._retrying(method, self.base_url + path, params=params, limited=True)

    async def _retrying(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        limited: bool,
    ) -> dict[str, Any]:
        """A safe-to-repeat API call, retried on transient failures. `limited`: a task endpoint,
        which takes a token from the shared query limiter for every attempt."""

        async def attempt() -> dict[str, Any]:
            if limited:
                await self.limiter.acquire()
            return await self._attempt(method, url, params=params)

        def on_retry(err: BaseException, delay: float) -> None:
            if limited and getattr(err, "http_status", None) == 429:
                self.limiter.pause(delay)  # the whole account is throttled, not just this call

        retry = policy(
            attempts=self.max_retries + 1,
            backoff=self.backoff,
            retry_if=_retryable,
            sleep=self._sleep,
            what=f"{method} {_path(url)}",
            on_retry=on_retry,
        )
        return await retry(attempt)

    async def _attempt(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        limit: float | None = None,
    ) -> dict[str, Any]:
        """One authorised API call; any failure becomes a WanError."""
        try:
            status, headers, raw = await self._send(
                method, url, headers=self._auth(), params=params, limit=limit
            )
        except TimeoutError:
            seconds = limit or self.request_timeout
            raise WanError(
                REQUEST_TIMEOUT, f"no answer within {seconds} s", retryable=True
            ) from None
        except aiohttp.ClientError as exc:
            raise WanError(
                NETWORK_ERROR, self._redact(type(exc).__name__), retryable=True
            ) from None
        if status != 200:
            err = self._error(status, headers, raw)
            log.info(
                "%s %s -> %d %s (request %s)", method, _path(url), status, err.code, err.request_id
            )
            raise err
        body = _json(raw)
        if not isinstance(body, dict):
            raise WanError(BAD_RESPONSE, "answer is not a JSON object", http_status=status)
        return body

    async def _poll_once(self, task_id: str) -> TaskResult:
        """One query for the scheduler, which has already taken the limiter token."""
        body = await self._attempt(
            "GET", f"{self.base_url}/tasks/{task_id}", limit=self.poll_timeout
        )
        return parse_task(body, task_id)

    async def _download_once(
        self, url: str, max_bytes: int, sink: _FileSink | None = None
    ) -> bytes:
        """One GET of a result; its bytes, or b"" when they went to `sink`."""
        timeout = aiohttp.ClientTimeout(total=max(self.request_timeout, 60.0), sock_connect=10.0)
        try:
            async with self.session.get(url, timeout=timeout) as resp:
                if resp.status != 200:
                    await resp.read()
                    if resp.status in (403, 404, 410):
                        # Signed result URLs stop working after 24 h (OSS answers 403 or 404).
                        raise WanError(
                            RESULT_EXPIRED,
                            f"HTTP {resp.status}",
                            http_status=resp.status,
                            retryable=False,
                        )
                    raise WanError(
                        DOWNLOAD_FAILED,
                        f"HTTP {resp.status}",
                        http_status=resp.status,
                        retryable=resp.status in RETRYABLE_STATUSES,
                        retry_after=parse_retry_after(resp.headers.get("Retry-After")),
                    )
                if resp.content_length is not None and resp.content_length > max_bytes:
                    raise WanError(
                        RESULT_TOO_LARGE, f"{resp.content_length} bytes", retryable=False
                    )
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > max_bytes:
                        raise WanError(RESULT_TOO_LARGE, f"over {max_bytes} bytes", retryable=False)
                    if sink is None:
                        chunks.append(chunk)
                    else:
                        await sink.write(chunk)
                return b"".join(chunks)
        except TimeoutError:
            raise WanError(REQUEST_TIMEOUT, "result download timed out", retryable=True) from None
        except aiohttp.ClientError as exc:
            raise WanError(NETWORK_ERROR, type(exc).__name__, retryable=True) from None

    def _error(
        self,
        status: int,
        headers: Mapping[str, str],
        raw: bytes,
        *,
        default_code: str | None = None,
    ) -> WanError:
        return error_from_response(
            status, headers, raw, default_code=default_code, secret=self._api_key
        )


class _FileSink:
    """Bytes on their way to a file, written a megabyte at a time in a worker thread (a write of a
    few MB to the page cache is quick, but still not the event loop's to do)."""

    FLUSH = 1024 * 1024

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self._buffer = bytearray()
        self._file: BinaryIO | None = None

    async def write(self, chunk: bytes) -> None:
        self._buffer += chunk
        self.size += len(chunk)
        if len(self._buffer) >= self.FLUSH:
            await self._flush()

    async def _flush(self) -> None:
        data, self._buffer = self._buffer, bytearray()
        if self._file is None:
            self._file = await asyncio.to_thread(self.path.open, "wb")
        await asyncio.to_thread(self._file.write, data)

    async def close(self, *, flush: bool = True) -> int:
        """Write what is left (unless the download failed) and close the file; the size."""
        try:
            if flush:
                await self._flush()
        finally:
            if self._file is not None:
                await asyncio.to_thread(self._file.close)
                self._file = None
        return self.size


def _retryable(exc: BaseException) -> bool:
    """Safe-to-repeat calls: any error that says trying again may work."""
    return isinstance(exc, WanError) and exc.retryable


def _no_task_made(exc: BaseException) -> bool:
    """Creates: only an answer that proves no task was made (a 429, or a 5xx carrying DashScope's
    error body; `_create_once` turns any other 5xx into `CreateOutcomeUnknown`), or a connection
    that never opened. Timeouts and dropped connections are never retried."""
    if not isinstance(exc, WanError) or isinstance(exc, CreateOutcomeUnknown):
        return False
    if exc.http_status is None:
        return exc.code == NETWORK_ERROR
    if exc.http_status == 429:
        return True
    return exc.http_status >= 500 and exc.retryable


async def _yielding(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """`chunks`, handing the event loop a turn after each one. aiohttp writes a streamed body on
    without pausing for as long as the socket takes the bytes (a fast network, or loopback), so
    without this the base64 encoding of three 10 MB images would run as one long stall."""
    async for chunk in chunks:
        yield chunk
        await asyncio.sleep(0)


def _json(raw: bytes, *, strict: bool = True) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        if strict:
            raise WanError(BAD_RESPONSE, "answer is not JSON", retryable=True) from None
        return None


def _path(url: str) -> str:
    """For logs: the path only, never a query string (upload policies sit in forms, not here)."""
    return url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
