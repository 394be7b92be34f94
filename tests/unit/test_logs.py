"""Secrets stay out of log lines (messages, tracebacks, discord.py's DEBUG URLs and payloads) and reprs."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import asyncpg
import pytest

from bot.config import load_settings
from bot.logs import setup_logging
from cogs.intake.requests import Place

TOKEN = "MTA5ODc2NTQzMjEwOTg3NjU0.GAbCdE.bot-token-for-tests-only"
API_KEY = "sk-logs-0123456789abcdef"
DB_PASSWORD = "pg/Secret:42"  # written percent-encoded in the URL, as it must be
DATABASE_URL = "postgresql://wanbot:pg%2FSecret%3A42@db.internal:5432/wanbot"
INTERACTION_TOKEN = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5OmFiY2RlZmdoaWprbG1ub3A.x-Y_z"


# Every test below runs in both WANBOT_LOG_FORMATs: the JSON lines are redacted exactly like text.
@pytest.fixture(params=["text", "json"])
def debug_logging(request: pytest.FixtureRequest) -> Iterator[io.StringIO]:
    """The bot's own logging set-up at DEBUG, its handler writing to a buffer; undone afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level, logging.getLogger("discord").level
    settings = load_settings(
        {
            "DISCORD_TOKEN": TOKEN,
            "DASHSCOPE_API_KEY": API_KEY,
            "DATABASE_URL": DATABASE_URL,
            "WANBOT_LOG_LEVEL": "DEBUG",
            "WANBOT_LOG_FORMAT": request.param,
        },
        dotenv_path=None,
    )
    setup_logging(settings)
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


def test_keys_in_messages_and_arguments_are_redacted(
    debug_logging: io.StringIO,
) -> None:
    log = logging.getLogger("bot.test")
    log.info("token %s and key %s", TOKEN, API_KEY)
    log.warning(f"inline {API_KEY}")
    err = debug_logging.getvalue()
    assert TOKEN not in err and API_KEY not in err
    assert err.count("[redacted]") == 3 and "token [redacted] and key [redacted]" in err


def test_exception_text_is_redacted(debug_logging: io.StringIO) -> None:
    log = logging.getLogger("bot.test")
    try:
        raise RuntimeError(f"the server said: bad key {API_KEY}")
    except RuntimeError as error:
        log.error("create failed", exc_info=error)
    err = debug_logging.getvalue()
    assert "Traceback" in err and "RuntimeError: the server said: bad key [redacted]" in err
    assert API_KEY not in err


async def test_the_database_password_is_redacted_in_driver_tracebacks(
    debug_logging: io.StringIO,
) -> None:
    """The PostgreSQL password never reaches a log line: not in a URL we log, not in the traceback
    of a driver error (as written in the URL or decoded), nor in another database URL."""
    log = logging.getLogger("bot.test")
    log.warning("jobs and quotas are kept in %s", DATABASE_URL)
    try:
        await asyncpg.connect(f"{DATABASE_URL.replace('5432', 'notaport')}", timeout=1)
    except ValueError:
        log.exception("could not open the database")
    try:
        raise asyncpg.InvalidPasswordError(f"password {DB_PASSWORD!r} refused")
    except asyncpg.PostgresError:
        log.exception("login refused")
    log.info("copying to postgresql://other:elsewhere-pw@10.0.0.2/wanbot")
    err = debug_logging.getvalue()
    assert "could not open the database" in err and "login refused" in err
    for secret in (DB_PASSWORD, "pg%2FSecret%3A42", "elsewhere-pw"):
        assert secret not in err


def test_interaction_and_webhook_tokens_in_discord_urls_are_redacted(
    debug_logging: io.StringIO,
) -> None:
    api = "https://discord.com/api/v10"
    # As discord.py's HTTP client and webhook adapter print them at DEBUG.
    logging.getLogger("discord.webhook.async_").debug(
        "Webhook ID %s with %s %s has returned status code %s",
        1234,
        "PATCH",
        f"{api}/webhooks/1234/{INTERACTION_TOKEN}/messages/@original",
        200,
    )
    logging.getLogger("discord.http").debug(
        "%s %s with %s has returned %s",
        "POST",
        f"{api}/interactions/5678/{INTERACTION_TOKEN}/callback?with_response=true",
        None,
        204,
    )
    # And the gateway event that carries it, as a dict.
    logging.getLogger("discord.gateway").debug(
        "For Shard ID %s: WebSocket Event: %s",
        None,
        {"t": "INTERACTION_CREATE", "d": {"id": "5678", "token": INTERACTION_TOKEN}},
    )
    err = debug_logging.getvalue()
    assert INTERACTION_TOKEN not in err
    assert f"{api}/webhooks/1234/[redacted]/messages/@original" in err
    assert f"{api}/interactions/5678/[redacted]/callback?with_response=true" in err
    assert "'token': '[redacted]'" in err and "'id': '5678'" in err


def test_a_place_never_shows_its_interaction_token() -> None:
    place = Place(1, 2, None, 3, 4, interaction_token=INTERACTION_TOKEN)
    assert INTERACTION_TOKEN not in repr(place) and "message_id=4" in repr(place)
