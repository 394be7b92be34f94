"""Error envelopes: DashScope's JSON `{code, message, request_id}` and OSS's XML `<Error>`."""

from __future__ import annotations

import json
import uuid
from xml.sax.saxutils import escape

from aiohttp import web

# Standard messages, so a fault rule or check that names only a code still reads like the real service
# (the misspelling "occured" is the service's own).
STANDARD_MESSAGES: dict[str, str] = {
    "InvalidApiKey": "Invalid API-key provided.",
    "InvalidParameter": "Required parameter(s) missing or invalid, please check the request parameters.",
    "InvalidParameter.DataInspection": "Unable to download the media resource during the data inspection process.",
    "DataInspectionFailed": "Input or output data may contain inappropriate content.",
    "IPInfringementSuspect": "Input data is suspected of being involved in IP infringement.",
    "AccessDenied": "Access denied.",
    "UnsupportedOperation": "The operation is unsupported on the referred object.",
    "Throttling": "Requests throttling triggered.",
    "Throttling.RateQuota": "Requests rate limit exceeded, please try again later.",
    "Throttling.BurstRate": "Request rate increased too quickly, please smooth out your requests.",
    "Throttling.AllocationQuota": "Allocated quota exceeded, please increase your quota limit.",
    "Throttling.Concurrency": "Too many concurrent requests, please try again later.",
    "InternalError": "An internal error has occured, please try again later or contact service support.",
    "InternalError.Algo": "An internal error has occured during algorithm execution.",
    "InternalError.Timeout": "An internal timeout error has occured during execution, please try again later or contact service support.",
    "SystemError": "An system error has occured, please try again later.",
    "ServiceUnavailable": "Service temporarily unavailable, please try again later.",
}


def standard_message(code: str) -> str:
    return STANDARD_MESSAGES.get(code, f"{code} (emulated error).")


def new_request_id() -> str:
    return str(uuid.uuid4())


class ApiError(Exception):
    """A DashScope API error answered as the JSON envelope with an HTTP status."""

    def __init__(self, status: int, code: str, message: str | None = None) -> None:
        self.status = status
        self.code = code
        self.message = message if message is not None else standard_message(code)
        super().__init__(f"{status} {code}: {self.message}")


def json_response(body: dict[str, object], status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body, ensure_ascii=False).encode(),
        content_type="application/json",
        charset="utf-8",
    )


def error_response(status: int, code: str, message: str | None = None) -> web.Response:
    body = {
        "code": code,
        "message": message if message is not None else standard_message(code),
        "request_id": new_request_id(),
    }
    return json_response(body, status)


def oss_error_response(status: int, code: str, message: str) -> web.Response:
    """What the OSS host (upload and result downloads) answers: XML, like real OSS."""
    request_id = uuid.uuid4().hex[:24].upper()
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n'
        f"  <Code>{escape(code)}</Code>\n  <Message>{escape(message)}</Message>\n"
        f"  <RequestId>{request_id}</RequestId>\n  <HostId>sandbox-oss.local</HostId>\n</Error>\n"
    )
    return web.Response(status=status, text=xml, content_type="application/xml", charset="utf-8")
