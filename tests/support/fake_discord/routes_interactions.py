"""REST routes of interactions: the callback and the interaction webhook (token-authenticated)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from .interaction_handle import FakeInteraction
from .rest_common import json_response, no_content, read_body
from .routes_core import _int

if TYPE_CHECKING:
    from .server import FakeDiscord


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true")


class InteractionRoutes:
    def __init__(self, fd: FakeDiscord) -> None:
        self.fd = fd
        self.svc = fd.interaction_responder

    def register(self, router: web.UrlDispatcher, prefix: str) -> None:
        add = router.add_route
        add("POST", prefix + "/interactions/{interaction_id}/{token}/callback", self.callback)
        hook = prefix + "/webhooks/{app_id}/{token}"
        add("POST", hook, self.followup)
        add("GET", hook + "/messages/{message_id}", self.get_message)
        add("PATCH", hook + "/messages/{message_id}", self.edit_message)
        add("DELETE", hook + "/messages/{message_id}", self.delete_message)

    async def callback(self, request: web.Request) -> web.Response:
        body, uploads = await read_body(request)
        result = self.svc.callback(
            _int(request, "interaction_id"), request.match_info["token"], body, uploads
        )
        if _truthy(request.query.get("with_response")):
            return json_response(result)
        return no_content()

    def _ix(self, request: web.Request) -> FakeInteraction:
        return self.svc.webhook_interaction(_int(request, "app_id"), request.match_info["token"])

    async def followup(self, request: web.Request) -> web.Response:
        ix = self._ix(request)
        body, uploads = await read_body(request)
        message = self.svc.followup(ix, body, uploads)
        if _truthy(request.query.get("wait")):
            return json_response(message)
        return no_content()

    async def get_message(self, request: web.Request) -> web.Response:
        ix = self._ix(request)
        return json_response(self.svc.get_message(ix, request.match_info["message_id"]))

    async def edit_message(self, request: web.Request) -> web.Response:
        ix = self._ix(request)
        body, uploads = await read_body(request)
        message = self.svc.edit_message(ix, request.match_info["message_id"], body, uploads)
        return json_response(message)

    async def delete_message(self, request: web.Request) -> web.Response:
        ix = self._ix(request)
        self.svc.delete_message(ix, request.match_info["message_id"])
        return no_content()
