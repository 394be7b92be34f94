"""The one exception type of the Wan client, with a plain-language text for users for every code.

Codes and their HTTP statuses are DashScope's documented error codes. "Retryable" means trying the same thing again
later may work (for a failed task: resubmitting it); the client itself only retries requests whose
answer proves nothing was created (see `client.py`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Final

from bot.i18n import _
from bot.wan.retry import parse_retry_after

# Codes the client makes up itself, for failures that never reached (or never came back from) Wan.
CREATE_OUTCOME_UNKNOWN: Final = "CreateOutcomeUnknown"
NETWORK_ERROR: Final = "NetworkError"
REQUEST_TIMEOUT: Final = "RequestTimeOut"
WAIT_TIMEOUT: Final = "WaitTimeout"
RESULT_EXPIRED: Final = "ResultExpired"
RESULT_TOO_LARGE: Final = "ResultTooLarge"
DOWNLOAD_FAILED: Final = "DownloadFailed"
BAD_RESPONSE: Final = "BadResponse"
UPLOAD_FAILED: Final = "UploadFailed"
CLIENT_CLOSED: Final = "ClientClosed"
UNKNOWN: Final = "Unknown"

# Each text is a `Text` (bot.i18n): English as a str, rendered in the member's language by Discord's side.
_INPUT = _("Wan could not use the request.")
_BUSY = _("Wan is busy right now; please try again in a minute.")
_BROKEN = _("Wan had a problem on its side; please try again in a few minutes.")
_SETUP = _("The bot's DashScope account is not set up correctly; please tell the bot's admin.")

# DashScope's exact codes (and the lower-case aliases some endpoints use), plus our own.
USER_MESSAGES: Final[dict[str, str]] = {
    "InvalidParameter": _(
        "Wan could not use the request: a setting or the prompt was not accepted."
    ),
    "invalid_parameter_error": _(
        "Wan could not use the request: a setting, the prompt or an image was not accepted."
    ),
    "InvalidParameter.DataInspection": _(
        "Wan could not download or read one of the images; try another file."
    ),
    "DataInspectionFailed": _(
        "Wan's content filter flagged the prompt or an image, so nothing was made."
    ),
    "data_inspection_failed": _(
        "Wan's content filter flagged the prompt or an image, so nothing was made."
    ),
    "IPInfringementSuspect": _(
        "Wan suspects the request copies protected characters or brands, so nothing was made."
    ),
    "BadRequest.EmptyInput": _("Wan could not use the request: the prompt or images were missing."),
    "BadRequest.EmptyParameters": _("Wan could not use the request: its settings were missing."),
    "BadRequest.EmptyModel": _("Wan could not use the request: no model was named."),
    "BadRequest.IllegalInput": _("Wan could not use the request: it was malformed."),
    "BadRequest.TooLarge": _("The images are too large to send to Wan; try smaller files."),
    "InvalidURL": _("Wan could not fetch one of the images; try uploading it again."),
    "InvalidURL.ConnectionRefused": _(
        "Wan could not fetch one of the images; try uploading it again."
    ),
    "InvalidURL.Timeout": _("Wan timed out fetching one of the images; try again."),
    "InvalidImage.FileFormat": _(
        "Wan could not read one of the images; use a PNG, JPEG, WEBP or BMP file."
    ),
    "InvalidImageFormat": _(
        "Wan could not read one of the images; use a PNG, JPEG, WEBP or BMP file."
    ),
    "InvalidFile": _("Wan could not read one of the images; use a PNG, JPEG, WEBP or BMP file."),
    "Arrearage": _(
        "The bot's DashScope account has an unpaid balance; please tell the bot's admin."
    ),
    "UnsupportedOperation": _(
        "Wan cannot do that to this task any more (it may have already started)."
    ),
    "InvalidApiKey": _(
        "The bot's DashScope API key was refused (wrong key, or a key from another region); please tell the bot's admin."
    ),
    "invalid_api_key": _(
        "The bot's DashScope API key was refused (wrong key, or a key from another region); please tell the bot's admin."
    ),
    "NOT AUTHORIZED": _(
        "The bot's DashScope workspace or region setting is wrong; please tell the bot's admin."
    ),
    "AccessDenied": _("DashScope refused access for this request; please tell the bot's admin."),
    "AccessDenied.Unpurchased": _(
        "The Wan service is not activated on the bot's DashScope account; please tell the bot's admin."
    ),
    "Model.AccessDenied": _(
        "The bot's DashScope workspace may not use this model; please tell the bot's admin."
    ),
    "Workspace.AccessDenied": _(
        "The bot's DashScope workspace may not use this model; please tell the bot's admin."
    ),
    "AllocationQuota.FreeTierOnly": _(
        "The bot's free Wan quota is used up; please tell the bot's admin."
    ),
    "ModelNotFound": _(
        "DashScope does not know the configured model; please tell the bot's admin."
    ),
    "model_not_found": _(
        "DashScope does not know the configured model; please tell the bot's admin."
    ),
    "WorkSpaceNotFound": _(
        "DashScope does not know the configured workspace; please tell the bot's admin."
    ),
    "NotFound": _("DashScope could not find what was asked for."),
    "RequestTimeOut": _("Wan took too long to answer; please try again."),
    "Throttling": _BUSY,
    "Throttling.RateQuota": _BUSY,
    "Throttling.BurstRate": _BUSY,
    "Throttling.AllocationQuota": _(
        "The bot's Wan quota for now is used up; please try again later."
    ),
    "Throttling.Concurrency": _BUSY,
    "InternalError": _BROKEN,
    "InternalError.Algo": _("Wan's model failed on this request; trying again may work."),
    "InternalError.Timeout": _("Wan took too long to finish this edit; please try again."),
    "InternalError.Upload": _("Wan could not store the result; please try again."),
    "InternalError.FileUpload": _("Wan could not store the result; please try again."),
    "SystemError": _BROKEN,
    "ModelServiceFailed": _BROKEN,
    "ServiceUnavailable": _BUSY,
    "WaitTaskTimeout": _("Wan is taking unusually long with this edit."),
    # Our own codes.
    CREATE_OUTCOME_UNKNOWN: _(
        "The connection to Wan broke while the request was being sent, so it may or may not have started; it was not sent again to avoid paying twice."
    ),
    NETWORK_ERROR: _("The bot could not reach Wan; please try again in a minute."),
    WAIT_TIMEOUT: _("Wan is taking unusually long with this edit."),
    RESULT_EXPIRED: _("The result is no longer available (Wan keeps results for 24 hours)."),
    RESULT_TOO_LARGE: _("The result image was unexpectedly large, so it was not downloaded."),
    DOWNLOAD_FAILED: _("The finished image could not be downloaded from Wan."),
    UPLOAD_FAILED: _(
        "The images could not be uploaded to Wan's temporary storage; please try again."
    ),
    CLIENT_CLOSED: _("The bot is shutting down; please try again when it is back."),
    BAD_RESPONSE: _("Wan sent an answer the bot could not understand; please try again."),
    UNKNOWN: _("Something went wrong talking to Wan; please try again."),
}

# Families: `InvalidFile.Size` etc. fall back to the text of their prefix.
_PREFIXES: Final = ("InvalidFile", "InvalidURL", "Throttling", "InternalError", "AccessDenied")

# Codes for which trying again later may work.
RETRYABLE_CODES: Final = frozenset(
    {
        "InvalidURL.Timeout",
        "RequestTimeOut",
        "Throttling",
        "Throttling.RateQuota",
        "Throttling.BurstRate",
        "Throttling.AllocationQuota",
        "Throttling.Concurrency",
        "InternalError",
        "InternalError.Algo",
        "InternalError.Timeout",
        "InternalError.Upload",
        "InternalError.FileUpload",
        "SystemError",
        "ModelServiceFailed",
        "ServiceUnavailable",
        NETWORK_ERROR,
        WAIT_TIMEOUT,
        BAD_RESPONSE,
    }
)
RETRYABLE_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})


def user_message_for(code: str, http_status: int | None = None) -> str:
    """Plain-language text for users: exact code, then its family, then a guess from the status."""
    if code in USER_MESSAGES:
        return USER_MESSAGES[code]
    for prefix in _PREFIXES:
        if code.startswith(prefix + "."):
            return USER_MESSAGES[prefix]
    if http_status == 429:
        return _BUSY
    if http_status in (401, 403):
        return _SETUP
    if http_status is not None and 400 <= http_status < 500:
        return _INPUT
    if http_status is not None and http_status >= 500:
        return _BROKEN
    return USER_MESSAGES[UNKNOWN]


# 400s that are the account's, not the request's.
_ACCOUNT_400 = frozenset({"Arrearage", "UnsupportedOperation"})


def blames_request(code: str, http_status: int | None) -> bool:
    """Whether Wan refused the request itself (bad input, flagged content, images it could not
    read), as opposed to the account, the service or the network."""
    return http_status in (400, 413) and code not in _ACCOUNT_400


def is_retryable(code: str, http_status: int | None) -> bool:
    return (
        code in RETRYABLE_CODES
        or code.startswith("Throttling.")
        or (http_status in RETRYABLE_STATUSES and not code.startswith("InvalidParameter"))
    )


class WanError(Exception):
    """A failed call or task. `str()` is `code: message` (never the API key; the client redacts it)."""

    def __init__(
        self,
        code: str,
        message: str = "",
        *,
        http_status: int | None = None,
        request_id: str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.code = code or UNKNOWN
        self.message = message
        self.http_status = http_status
        self.request_id = request_id
        self.retryable = is_retryable(self.code, http_status) if retryable is None else retryable
        # Seconds the server asked us to wait (Retry-After), when it said so.
        self.retry_after = retry_after
        super().__init__(f"{self.code}: {message}" if message else self.code)

    @property
    def user_message(self) -> str:
        return user_message_for(self.code, self.http_status)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, http_status={self.http_status!r}, "
            f"request_id={self.request_id!r}, retryable={self.retryable!r})"
        )


class CreateOutcomeUnknown(WanError):
    """A create request was sent but no answer came back: Wan may or may not have made the task.

    Creates are not idempotent, so this is never retried automatically. `span`:
    the wall-clock (Unix) seconds from the send to giving up, within which Wan may have made the
    task (the job runner looks for it there in the task list).
    """

    def __init__(
        self,
        message: str = "",
        *,
        http_status: int | None = None,
        span: tuple[float, float] | None = None,
    ) -> None:
        super().__init__(CREATE_OUTCOME_UNKNOWN, message, http_status=http_status, retryable=False)
        # The send and the moment it was given up, as the client saw them. Without it the runner
        # falls back to the span the stored send stamp gives (to the longest a create may take):
        # a wider window, in which a rival task is likelier to make the lookup ambiguous.
        self.span = span


# A body-less error answer gets a code from its status (the SDK would say "Unknown" for all).
_STATUS_CODES: Final = {
    401: "InvalidApiKey",
    403: "AccessDenied",
    404: "NotFound",
    408: "RequestTimeOut",
    413: "BadRequest.TooLarge",
    429: "Throttling",
}
_OSS_XML = re.compile(r"<Code>(.*?)</Code>.*?<Message>(.*?)</Message>", re.S)


def redact(text: str, secret: str | None) -> str:
    """`text` with the API key blanked out, should a server ever echo it back."""
    if secret and len(secret) >= 4:
        text = text.replace(secret, "sk-***")
    return text


def error_from_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    default_code: str | None = None,
    secret: str | None = None,
) -> WanError:
    """A non-200 answer -> WanError. DashScope sends `{code, message|msg, request_id}`; OSS
    (uploads, result URLs) sends XML `<Error><Code/><Message/>`; proxies send anything."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    code = message = request_id = None
    if isinstance(data, dict):
        code = data.get("code") or None
        message = data.get("message") or data.get("msg")
        request_id = data.get("request_id")
    if not code:
        code = (
            default_code
            or _STATUS_CODES.get(status)
            or ("ServiceUnavailable" if status >= 500 else UNKNOWN)
        )
    if message is None:
        text = body[:2000].decode("utf-8", "replace")  # ("UTF-8" would be equivalent)
        xml = _OSS_XML.search(text)
        if xml:
            message = f"{xml.group(1)}: {xml.group(2)}"
        else:
            message = text[:200] if text else f"HTTP {status}"
    return WanError(
        str(code),
        redact(str(message), secret),
        http_status=status,
        request_id=str(request_id) if request_id else None,
        retry_after=parse_retry_after(headers.get("Retry-After")),
    )
