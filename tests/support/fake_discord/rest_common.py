"""Plumbing shared by the REST routes: JSON responses, request bodies (JSON or multipart),
authentication, the request log, injected failures and the 404 for unknown routes."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from aiohttp import web

from .errors import ApiError
from .holds import Hold
from .message_input import Upload

if TYPE_CHECKING:
    from .ratelimits import RateLimiter

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
API_PREFIX = "/api/v10"
# Routes authenticated by the interaction/webhook token in the URL, not the bot token.
_TOKEN_ROUTES = re.compile(r"^/(webhooks|interactions)/")


class RequestRecord(NamedTuple):
    method: str
    path: str  # relative to the API base ("/channels/1/messages"); CDN paths start /cdn or /media
    status: int


@dataclass
class InjectedFailure:
    method: str
    pattern: re.Pattern[str]
    status: int
    body: dict[str, Any]
    times: int
    headers: dict[str, str]


def json_response(data: Any, status: int = 200) -> web.Response:
    # discord.py parses JSON only when the header is exactly "application/json".
    return web.Response(
        body=json.dumps(data).encode(), status=status, content_type="application/json"
    )


def no_content() -> web.Response:
    return web.Response(status=204)


async def read_body(request: web.Request) -> tuple[dict[str, Any], list[Upload]]:
    """The JSON payload and uploaded files of a JSON or ``multipart/form-data`` request."""
    if request.content_type.startswith("multipart/"):
        payload: dict[str, Any] = {}
        uploads: list[Upload] = []
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            name = part.name or ""  # type: ignore[union-attr]
            data = await part.read()  # type: ignore[union-attr]
            if name == "payload_json":
                payload = json.loads(data.decode())
                continue
            m = re.fullmatch(r"files\[(\d+)\]|file(\d*)", name)
            if m is None:
                raise ApiError(400, 50035, "Invalid Form Body")
            index = int(m.group(1) or m.group(2) or 0)
            uploads.append(Upload(index, part.filename or f"file{index}", bytes(data)))  # type: ignore[union-attr]
        return payload, uploads
    raw = await request.read()
    if not raw:
        return {}, []
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError(400, 50109, "The request body contains invalid JSON.") from None
    return (body if isinstance(body, dict) else {"__list__": body}), []


def make_middleware(
    *,
    token: Callable[[], str],
    records: list[RequestRecord],
    failures: list[InjectedFailure],
    unknown: list[str],
    changed: Callable[[], None],
    limiter: Callable[[], RateLimiter],
    holds: list[Hold] | None = None,
) -> Any:
    held = holds if holds is not None else []

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        rel = path[len(API_PREFIX) :] if path.startswith(API_PREFIX) else path
        status = 500
        try:
            hold = await _matching_hold(request, rel, held)
            if hold is not None and not hold.after_handling:
                failure = await hold.park()
                if failure is not None:
                    response = json_response(failure[1], failure[0])
                    status = response.status
                    return response
            response = await _guarded(request, handler, rel, token(), failures, unknown, limiter())
            status = response.status
            if hold is not None and hold.after_handling:
                await hold.park()  # done, but the answer is slow to come back
            return response
        finally:
            if request.path != "/gateway":
                records.append(RequestRecord(request.method, rel, status))
                changed()

    return middleware


async def _matching_hold(request: web.Request, rel: str, holds: list[Hold]) -> Hold | None:
    # A slow network or server, on the test's cue (Discord takes its time under load; its CDN can
    # take seconds for a large attachment): the request, or its answer, waits until released.
    for h in holds:
        if not h.wants(request.method, rel):
            continue
        if h.body_contains is not None:
            if request.content_type.startswith("multipart/"):
                continue  # its parts are read once, by the handler
            if h.body_contains not in await request.read():  # cached for the handler
                continue
        return h
    return None


async def _guarded(
    request: web.Request,
    handler: Handler,
    rel: str,
    token: str,
    failures: list[InjectedFailure],
    unknown: list[str],
    limiter: RateLimiter,
) -> web.StreamResponse:
    headers: dict[str, str] = {}
    if request.path.startswith(API_PREFIX):
        if not _TOKEN_ROUTES.match(rel) and rel != "/gateway":
            if request.headers.get("Authorization") != f"Bot {token}":
                return json_response({"message": "401: Unauthorized", "code": 0}, 401)
        for f in failures:
            if f.times > 0 and f.method in (request.method, "*") and f.pattern.search(rel):
                f.times -= 1
                await request.read()
                resp = json_response(f.body, f.status)
                resp.headers.update(f.headers)
                return resp
        refused, headers = limiter.admit(request)
        if refused is not None:
            await request.read()
            return refused
    try:
        response = await handler(request)
        response.headers.update(headers)
        return response
    except ApiError as exc:
        response = json_response(exc.body, exc.status)
        response.headers.update(headers)
        return response
    except web.HTTPNotFound:
        unknown.append(f"{request.method} {rel}")
        log.warning("fake discord: no route for %s %s", request.method, rel)
        return json_response({"message": "404: Not Found", "code": 0}, 404)
    except web.HTTPMethodNotAllowed:
        unknown.append(f"{request.method} {rel}")
        log.warning("fake discord: method not allowed: %s %s", request.method, rel)
        return json_response({"message": "405: Method Not Allowed", "code": 0}, 405)
