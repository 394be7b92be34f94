"""Logging set-up, with formatters that keep secrets out of every log line (the Discord token, the
DashScope key, the database password, interaction tokens).

Two formats (`WANBOT_LOG_FORMAT`): `text` for people, `json` (one object per line) for log collectors.
A JSON line carries `job_id` and `guild_id` when the record has them as attributes, which is what
`log.info(..., extra={"job_id": 12})` and `logging.LoggerAdapter(log, {"job_id": 12})` give; for
the many existing calls that only say "job 12: ..." in the message, the id is read from the text.
"""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from bot.config import Settings

REDACTED = "[redacted]"
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# Interaction and webhook tokens sit in REST paths (discord.py logs them at DEBUG):
# /webhooks/<application id>/<token>/..., /interactions/<interaction id>/<token>/callback.
_URL_TOKEN = re.compile(r"(/(?:webhooks|interactions)/\d+/)[^/?#\s'\"]+")
# ...and in gateway payloads (INTERACTION_CREATE at DEBUG), as JSON or as a Python dict's repr.
_FIELD_TOKEN = re.compile(r"""(['"]token['"]\s*:\s*['"])[^'"]+""")
# Credentials in a database URL (`postgresql://user:PASSWORD@host`), whichever database it names.
_URL_PASSWORD = re.compile(r"((?:postgres(?:ql)?|sqlite)://[^:/@\s]*:)[^@\s]+@")
# The ids the JSON format looks for in a message when the record does not carry them.
_IDS_IN_TEXT = {
    "job_id": re.compile(r"\bjob (\d+)\b"),
    "guild_id": re.compile(r"\bguild (\d+)\b"),
}


def redact(text: str, secrets: list[str]) -> str:
    """`text` without the given secrets, interaction/webhook tokens in URLs, or `token` fields."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    text = _URL_TOKEN.sub(rf"\g<1>{REDACTED}", text)
    text = _URL_PASSWORD.sub(rf"\g<1>{REDACTED}@", text)
    return _FIELD_TOKEN.sub(rf"\g<1>{REDACTED}", text)


def _usable_secrets(secrets: list[str]) -> list[str]:
    # Very short values would blank ordinary words; real tokens and keys are long.
    return [s for s in secrets if s and len(s) >= 6]


class RedactingFormatter(logging.Formatter):
    """Redacts the whole formatted line, so the message, its arguments and any traceback (whose
    exception message may quote a URL or a key) are all covered."""

    def __init__(self, fmt: str, secrets: list[str]) -> None:
        super().__init__(fmt)
        self.secrets = _usable_secrets(secrets)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self.secrets)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: `time` (ISO 8601, UTC), `level`, `logger`, `message`, then
    `job_id` and `guild_id` where known and `traceback` when there is one.

    Every text field is redacted before it is encoded, with the same `redact` as the text format:
    after encoding, a `"token": "..."` inside a message would read `\\"token\\": ...` and slip past
    the pattern.
    """

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = _usable_secrets(secrets)

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(message, self.secrets),
        }
        for name, pattern in _IDS_IN_TEXT.items():
            value = _an_id(getattr(record, name, None))
            if value is None and (found := pattern.search(message)):
                value = int(found.group(1))
            if value is not None:
                entry[name] = value
        traceback = self._traceback(record)
        if traceback:
            entry["traceback"] = redact(traceback, self.secrets)
        # ensure_ascii=False keeps prompts in any language readable; newlines are still escaped,
        # so one record is always one line.
        return json.dumps(entry, ensure_ascii=False)

    def _traceback(self, record: logging.LogRecord) -> str:
        parts = []
        if record.exc_info:
            parts.append(self.formatException(record.exc_info))
        elif record.exc_text:  # a record that was formatted (or pickled) before it reached us
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(self.formatStack(record.stack_info))
        return "\n".join(parts)


def _an_id(value: object) -> int | None:
    """A Discord or job id given as an extra: an int, or a string of digits (ids often are)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def make_formatter(settings: Settings) -> logging.Formatter:
    """The formatter `WANBOT_LOG_FORMAT` asks for, redacting the token and the key."""
    secrets = [
        settings.discord_token or "",
        settings.dashscope_api_key or "",
        *database_passwords(settings.database_url),
    ]
    if settings.log_format == "json":
        return JsonFormatter(secrets)
    return RedactingFormatter(TEXT_FORMAT, secrets)


def database_passwords(url: str) -> list[str]:
    """The password of a PostgreSQL `url` (and of PGPASSWORD, which the driver falls back on), as
    written and percent-decoded: a driver's message may quote either."""
    found = [os.environ.get("PGPASSWORD", "")]
    try:
        written = urlsplit(url).netloc.rpartition("@")[0].partition(":")[2]
    except ValueError:
        written = ""
    found += [written, unquote(written)]
    return [p for p in dict.fromkeys(found) if p]


def setup_logging(settings: Settings) -> None:
    """Log to stderr at the configured level; discord.py's own chatter at WARNING unless debugging."""
    handler = logging.StreamHandler()
    handler.setFormatter(make_formatter(settings))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    if settings.log_level != "DEBUG":
        logging.getLogger("discord").setLevel(logging.WARNING)
