"""`WANBOT_LOG_FORMAT=json`: one JSON object per line, with the job and guild ids where known.

Redaction in this format is covered by tests/unit/test_logs.py, whose tests run in both formats.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.config import ConfigError, load_settings
from bot.logs import JsonFormatter, RedactingFormatter, make_formatter, setup_logging

TOKEN = "MTA5ODc2NTQzMjEwOTg3NjU0.GAbCdE.bot-token-for-json-tests"
API_KEY = "sk-json-0123456789abcdef"
BASE = {"DISCORD_TOKEN": TOKEN, "DASHSCOPE_API_KEY": API_KEY}


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """The bot's logging set-up in JSON at INFO, writing to a buffer; undone afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level, logging.getLogger("discord").level
    setup_logging(load_settings({**BASE, "WANBOT_LOG_FORMAT": "json"}, dotenv_path=None))
    out = io.StringIO()
    (handler,) = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(out)
    try:
        yield out
    finally:
        root.handlers[:], level, discord_level = saved
        root.setLevel(level)
        logging.getLogger("discord").setLevel(discord_level)


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    text = out.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_one_object_per_line_with_the_documented_fields(json_logs: io.StringIO) -> None:
    before = datetime.now(UTC)
    logging.getLogger("bot.jobs").warning("two\nlines %s", "here")
    (entry,) = lines(json_logs)
    assert list(entry) == ["time", "level", "logger", "message"]
    assert entry["level"] == "WARNING" and entry["logger"] == "bot.jobs"
    assert entry["message"] == "two\nlines here"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])
    when = datetime.fromisoformat(entry["time"])
    assert when.tzinfo is not None and abs(when - before) < timedelta(seconds=5)


def test_ids_from_extras_and_adapters(json_logs: io.StringIO) -> None:
    log = logging.getLogger("bot.test")
    log.info("queued", extra={"job_id": 12, "guild_id": 987654321098765432})
    logging.LoggerAdapter(log, {"job_id": 13, "guild_id": "42"}).info("posting")
    log.info("no ids", extra={"job_id": None, "guild_id": "not a number"})
    first, second, third = lines(json_logs)
    assert (first["job_id"], first["guild_id"]) == (12, 987654321098765432)
    assert (second["job_id"], second["guild_id"]) == (13, 42)
    assert "job_id" not in third and "guild_id" not in third


def test_ids_read_from_messages_that_name_them(json_logs: io.StringIO) -> None:
    """The runner's existing lines ("job 12: ...") get a job_id without touching their calls."""
    log = logging.getLogger("bot.jobs")
    log.info("job %d: Wan task %s created", 12, "task-abc")
    log.info("reply %d: job %d queued", 555, 13)
    log.info("no permission to create threads in guild %d", 77)
    log.info("resumed %d unfinished job(s)", 3)
    # An extra wins over the text, which may mention another job.
    log.info("job 5 replaced by job 6", extra={"job_id": 6})
    ids = [(e.get("job_id"), e.get("guild_id")) for e in lines(json_logs)]
    assert ids == [(12, None), (13, None), (None, 77), (None, None), (6, None)]


def test_tracebacks_are_one_string_field(json_logs: io.StringIO) -> None:
    log = logging.getLogger("bot.jobs")
    try:
        raise ValueError(f"boom with {API_KEY}")
    except ValueError:
        log.exception("job %d failed unexpectedly", 9)
    log.info("and the next line stands alone")
    first, second = lines(json_logs)
    assert first["job_id"] == 9 and first["level"] == "ERROR"
    assert first["traceback"].startswith("Traceback (most recent call last):")
    assert first["traceback"].endswith("ValueError: boom with [redacted]")
    assert "traceback" not in second and API_KEY not in json_logs.getvalue()


def test_a_json_token_field_inside_a_message_is_redacted(json_logs: io.StringIO) -> None:
    """Redacted before encoding: once encoded, its quotes would be escaped past the pattern."""
    logging.getLogger("discord.gateway").warning('raw payload {"token": "abc.def-ghi"}')
    (entry,) = lines(json_logs)
    assert entry["message"] == 'raw payload {"token": "[redacted]"}'


def test_the_setting_picks_the_formatter() -> None:
    def formatter(value: str | None) -> logging.Formatter:
        env = BASE if value is None else {**BASE, "WANBOT_LOG_FORMAT": value}
        return make_formatter(load_settings(env, dotenv_path=None))

    assert type(formatter(None)) is RedactingFormatter
    assert type(formatter("text")) is RedactingFormatter
    assert type(formatter(" JSON ")) is JsonFormatter


@pytest.mark.parametrize("value", ["xml", "logfmt", "jsonl"])
def test_unknown_formats_are_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({**BASE, "WANBOT_LOG_FORMAT": value}, dotenv_path=None)
    assert str(info.value) == "WANBOT_LOG_FORMAT: expected text or json"
