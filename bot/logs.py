"""Logging set-up, with a formatter that keeps secrets out of every log line."""

from __future__ import annotations

import logging
import re

from bot.config import Settings

REDACTED = "[redacted]"
# Interaction and webhook tokens sit in REST paths (discord.py logs them at DEBUG):
# /webhooks/<application id>/<token>/..., /interactions/<interaction id>/<token>/callback.
_URL_TOKEN = re.compile(r"(/(?:webhooks|interactions)/\d+/)[^/?#\s'\"]+")
# ...and in gateway payloads (INTERACTION_CREATE at DEBUG), as JSON or as a Python dict's repr.
_FIELD_TOKEN = re.compile(r"""(['"]token['"]\s*:\s*['"])[^'"]+""")


def redact(text: str, secrets: list[str]) -> str:
    """`text` without the given secrets, interaction/webhook tokens in URLs, or `token` fields."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    text = _URL_TOKEN.sub(rf"\g<1>{REDACTED}", text)
    return _FIELD_TOKEN.sub(rf"\g<1>{REDACTED}", text)


class RedactingFormatter(logging.Formatter):
    """Redacts the whole formatted line, so the message, its arguments and any traceback (whose
    exception message may quote a URL or a key) are all covered."""

    def __init__(self, fmt: str, secrets: list[str]) -> None:
        super().__init__(fmt)
        # Very short values would blank ordinary words; real tokens and keys are long.
        self.secrets = [s for s in secrets if s and len(s) >= 6]

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self.secrets)


def setup_logging(settings: Settings) -> None:
    """Log to stderr at the configured level; discord.py's own chatter at WARNING unless debugging."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        RedactingFormatter(
            "%(asctime)s %(levelname)-7s %(name)s: %(message)s",
            [settings.discord_token or "", settings.dashscope_api_key or ""],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    if settings.log_level != "DEBUG":
        logging.getLogger("discord").setLevel(logging.WARNING)
