"""Temporary-file upload: getPolicy, the fake OSS form upload, and `oss://` lookup."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web
from aiohttp.multipart import BodyPartReader

from bot.sandbox.clock import WAN_TZ
from bot.sandbox.errors import oss_error_response

UPLOAD_PATH = "/oss-upload"
REQUIRED_FIELDS = (
    "OSSAccessKeyId",
    "Signature",
    "policy",
    "key",
    "x-oss-object-acl",
    "x-oss-forbid-overwrite",
    "success_action_status",
)


@dataclass
class Policy:
    upload_dir: str
    model: str
    expires_mono: float


@dataclass
class UploadedObject:
    data: bytes
    content_type: str
    model: str
    expires_mono: float


class UploadError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class UploadStore:
    """Issues upload policies, accepts OSS-style form posts and resolves `oss://` keys."""

    def __init__(
        self, access_key_id: str, policy_ttl: float, object_ttl: float, max_mb: int
    ) -> None:
        self.access_key_id = access_key_id
        self._secret = secrets.token_bytes(16)
        self._policy_ttl = policy_ttl
        self._object_ttl = object_ttl
        self._max_mb = max_mb
        self._account = secrets.token_hex(8)
        self._policies: dict[str, Policy] = {}  # by signature
        self.objects: dict[str, UploadedObject] = {}  # by key

    def _sign(self, policy: str) -> str:
        digest = hmac.new(self._secret, policy.encode(), hashlib.sha1).digest()
        return base64.b64encode(digest).decode()

    def issue_policy(self, model: str, upload_host: str) -> dict[str, object]:
        """The `data` object of a getPolicy answer."""
        day = datetime.now(WAN_TZ).strftime("%Y-%m-%d")
        upload_dir = f"dashscope-instant/{self._account}/{day}/{secrets.token_hex(8)}"
        expiration = datetime.fromtimestamp(time.time() + self._policy_ttl, UTC)
        document = {
            "expiration": expiration.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "conditions": [
                ["content-length-range", 0, self._max_mb * 1024 * 1024],
                ["starts-with", "$key", upload_dir],
                {"x-oss-object-acl": "private"},
                {"x-oss-forbid-overwrite": "true"},
            ],
        }
        policy = base64.b64encode(json.dumps(document).encode()).decode()
        signature = self._sign(policy)
        self._policies[signature] = Policy(upload_dir, model, time.monotonic() + self._policy_ttl)
        return {
            "policy": policy,
            "signature": signature,
            "upload_dir": upload_dir,
            "upload_host": upload_host,
            "expire_in_seconds": int(self._policy_ttl),
            "max_file_size_mb": self._max_mb,
            "capacity_limit_mb": 999999999,
            "oss_access_key_id": self.access_key_id,
            "x_oss_object_acl": "private",
            "x_oss_forbid_overwrite": "true",
        }

    async def handle_post(self, request: web.Request) -> web.Response:
        try:
            return await self._handle_post(request)
        except UploadError as exc:
            return oss_error_response(exc.status, exc.code, exc.message)

    async def _handle_post(self, request: web.Request) -> web.Response:
        if not request.content_type.startswith("multipart/form-data"):
            raise UploadError(400, "InvalidArgument", "The request must be multipart/form-data.")
        reader = await request.multipart()
        form: dict[str, str] = {}
        data: bytes | None = None
        file_type = "application/octet-stream"
        limit = self._max_mb * 1024 * 1024
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or not part.name:
                raise UploadError(
                    400, "InvalidArgument", "Nested or unnamed multipart fields are not supported."
                )
            if data is not None:
                raise UploadError(400, "InvalidArgument", "The file must be the last form field.")
            if part.name == "file":
                data = await _read_limited(part, limit)
                file_type = part.headers.get("Content-Type", file_type)
            else:
                form[part.name] = (await part.read(decode=True)).decode("utf-8", "replace")
        if data is None:
            raise UploadError(400, "InvalidArgument", "The form has no file field.")
        missing = [name for name in REQUIRED_FIELDS if name not in form]
        if missing:
            raise UploadError(
                400, "InvalidArgument", f"Missing form field(s): {', '.join(missing)}."
            )
        if form["OSSAccessKeyId"] != self.access_key_id:
            raise UploadError(
                403,
                "InvalidAccessKeyId",
                "The OSS Access Key Id you provided does not exist in our records.",
            )
        policy = self._policies.get(form["Signature"])
        if policy is None or not hmac.compare_digest(form["Signature"], self._sign(form["policy"])):
            raise UploadError(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        if time.monotonic() >= policy.expires_mono:
            raise UploadError(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
        key = form["key"]
        if not key.startswith(policy.upload_dir + "/") or len(key) <= len(policy.upload_dir) + 1:
            raise UploadError(
                403,
                "AccessDenied",
                'Invalid according to Policy: Policy Condition failed: ["starts-with", "$key", "'
                + policy.upload_dir
                + '"]',
            )
        if form["x-oss-object-acl"] != "private" or form["x-oss-forbid-overwrite"] != "true":
            raise UploadError(
                403, "AccessDenied", "Invalid according to Policy: Policy Condition failed."
            )
        if key in self.objects:
            raise UploadError(
                409,
                "FileAlreadyExists",
                "The object you specified already exists and can not be overwritten.",
            )
        content_type = form.get("x-oss-content-type", file_type)
        self.objects[key] = UploadedObject(
            data, content_type, policy.model, time.monotonic() + self._object_ttl
        )
        status = 200 if form["success_action_status"] == "200" else 204
        return web.Response(status=status)

    def resolve(self, url: str, model: str) -> bytes | None:
        """Bytes behind `oss://key` for `model`, or None if unknown, expired or uploaded for another model."""
        item = self.objects.get(url.removeprefix("oss://"))
        if item is None or item.model != model or time.monotonic() >= item.expires_mono:
            return None
        return item.data


async def _read_limited(part: BodyPartReader, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk():
        size += len(chunk)
        if size > limit:
            raise UploadError(
                400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size."
            )
        chunks.append(chunk)
    return b"".join(chunks)
