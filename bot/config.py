"""Settings, read from the environment (and a `.env` file, which the real environment overrides).

Every variable the bot reads is declared once in `VARIABLES`; `.env.example` and the settings page
of the docs (docs/settings.md) are checked against that list by the tests, so the three cannot drift
apart.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from dotenv import dotenv_values

from bot.store.models import Limits

REGIONS: dict[str, str] = {
    "singapore": "https://dashscope-intl.aliyuncs.com/api/v1",
    "beijing": "https://dashscope.aliyuncs.com/api/v1",
}
TRANSPORTS = ("url", "base64", "upload")
Transport = Literal["url", "base64", "upload"]
# List prices per generated image, used when WAN_PRICE_PER_IMAGE is not set.
REGION_PRICES: dict[str, float] = {"singapore": 0.220177, "beijing": 0.20}
DEFAULT_CURRENCY = "CNY"
LOG_FORMATS = ("text", "json")
LogFormat = Literal["text", "json"]


class ConfigError(Exception):
    """A missing or malformed setting. `str()` is one line naming the variable and what it expects."""

    def __init__(self, variable: str, expected: str) -> None:
        super().__init__(f"{variable}: {expected}")
        self.variable = variable
        self.expected = expected


@dataclass(frozen=True)
class Variable:
    """One environment variable: its name, default, whether it is a secret, and what it does."""

    name: str
    default: str | None
    description: str
    secret: bool = False


VARIABLES: tuple[Variable, ...] = (
    Variable(
        "DISCORD_TOKEN", None, "The bot token from the Discord developer portal (Bot tab).", True
    ),
    Variable(
        "DASHSCOPE_API_KEY",
        None,
        "Your Model Studio (DashScope) API key. Not needed with `--sandbox`.",
        True,
    ),
    Variable(
        "DASHSCOPE_BASE_URL",
        "singapore",
        "Region of your API key: `singapore`, `beijing`, or a full base URL "
        "(`https://dashscope-intl.aliyuncs.com/api/v1`).",
    ),
    Variable(
        "DISCORD_API_BASE",
        None,
        "Optional REST base URL for Discord (a REST proxy); the gateway address is asked from it too.",
    ),
    Variable(
        "DATABASE_URL",
        "sqlite:///wanbot.db",
        "Where quotas and jobs are kept: `sqlite:///PATH` for one bot process, or "
        "`postgresql://USER:PASSWORD@HOST:PORT/DATABASE` for several sharing one database.",
    ),
    Variable("WAN_MODEL", "wan2.5-i2i-preview", "The Wan model to call."),
    Variable(
        "WAN_TEXT_TO_IMAGE",
        "true",
        "`/wanimagine`, images made from a prompt (`wan2.5-t2i-preview`): `true`, or `false` to "
        "leave the command out.",
    ),
    Variable(
        "WAN_DEFAULT_DAILY_LIMIT",
        "10",
        "Images a member may generate per UTC day unless an admin sets otherwise.",
    ),
    Variable(
        "WAN_GLOBAL_DAILY_LIMIT",
        "100",
        "Images per UTC day for the whole bot: every server and DM together (`0`: no cap). "
        "`/wanowner cap` changes it at run time.",
    ),
    Variable(
        "WAN_SERVER_DAILY_LIMIT",
        "50",
        "The most images one server may use per UTC day (`0`: no ceiling); server admins can "
        "set a lower cap, never a higher one.",
    ),
    Variable(
        "WAN_DM_DAILY_LIMIT",
        "3",
        "Images per member per UTC day in DMs with the bot (`0` turns DMs off).",
    ),
    Variable(
        "WAN_ALLOWED_GUILDS",
        None,
        "Comma-separated server ids the bot works in; empty: any server it is invited to.",
    ),
    Variable(
        "WAN_DM_ANYONE",
        "false",
        "With `WAN_ALLOWED_GUILDS` set, DMs serve only members of an allowed server; `true` serves "
        "anyone who can message the bot (each within `WAN_DM_DAILY_LIMIT`).",
    ),
    Variable(
        "WANBOT_OWNER_IDS",
        None,
        "Comma-separated user ids who are owners too, besides the application's owner or team.",
    ),
    Variable(
        "WAN_PRICE_PER_IMAGE",
        None,
        "Price of one generated image for the cost reports, optionally with a currency "
        "(`0.03 USD`); default: the region's list price, 0.220177 CNY (Singapore) or 0.20 CNY "
        "(Beijing).",
    ),
    Variable(
        "WAN_PRICE_PER_IMAGE_T2I",
        None,
        "Price of one image made from text (`/wanimagine`) for the cost reports, in the currency "
        "of `WAN_PRICE_PER_IMAGE`; default: the same price as an edit.",
    ),
    Variable(
        "WAN_MAX_CONCURRENT_TASKS",
        "5",
        "Wan tasks in flight at once (the account allows 5); the rest wait in the bot's queue.",
    ),
    Variable(
        "WAN_MAX_JOBS_PER_USER",
        "2",
        "Queued or running jobs one member may have at once.",
    ),
    Variable(
        "WAN_QUERY_QPS",
        "10",
        "Task-status queries per second, shared by all jobs (the account allows 20).",
    ),
    Variable(
        "WAN_REQUEST_TIMEOUT",
        "30",
        "Seconds to wait for one answer from DashScope (a create with large inline images gets "
        "more, by its size). A create not answered in time is never sent again "
        "(docs/several-processes.md).",
    ),
    Variable(
        "WAN_TASK_SECONDS",
        "30-120",
        "How long a Wan task usually runs, `MIN-MAX` seconds: where the poll scheduler starts "
        "(it learns from the tasks it sees). Lower it only for a faster endpoint (an emulator).",
    ),
    Variable(
        "WAN_IMAGE_TRANSPORT",
        "base64",
        "How input images reach Wan: `base64` (works in both regions), `url` (Singapore only: "
        "Wan fetches Discord's CDN), `upload` (DashScope temporary storage, Beijing only).",
    ),
    Variable(
        "WANBOT_DOWNLOAD_TIMEOUT",
        "30",
        "Seconds one input image may take to download from Discord; a slower one is refused with "
        "a message (nothing charged) and holds up no other request.",
    ),
    Variable(
        "WANBOT_DEV_GUILD",
        None,
        "Optional server id: sync slash commands to this one server only (instant, for testing).",
    ),
    Variable("WANBOT_LOG_LEVEL", "INFO", "Logging level: DEBUG, INFO, WARNING or ERROR."),
    Variable(
        "WANBOT_LOG_FORMAT",
        "text",
        "Log line format: `text`, or `json` (one JSON object per line: time, level, logger, "
        "message, job_id and guild_id where known, traceback), for log collectors.",
    ),
    Variable(
        "WANBOT_METRICS_PORT",
        None,
        "Optional port for a Prometheus metrics endpoint (`/metrics`); off when empty.",
    ),
    Variable(
        "WANBOT_METRICS_HOST",
        "127.0.0.1",
        "Address the metrics endpoint listens on (`0.0.0.0` for a scraper in another container).",
    ),
    Variable(
        "WANBOT_SHARD_COUNT",
        None,
        "Optional: the total number of gateway shards, to split them across processes (each "
        "process runs `WANBOT_SHARD_IDS`; all share one PostgreSQL database). Empty: one process, "
        "every shard.",
    ),
    Variable(
        "WANBOT_SHARD_IDS",
        None,
        "With `WANBOT_SHARD_COUNT`: this process's shards, comma-separated (`0,1`); empty = all.",
    ),
    Variable(
        "WANBOT_LEASE_SECONDS",
        "15",
        "How long a process's hold on a job lasts unrenewed (it renews every third of it). On "
        "PostgreSQL a dead process's jobs are taken over this long after it stopped; on either "
        "engine a killed `python -m bot edit`'s job is ended, refunded, once it ran out.",
    ),
    Variable(
        "WANBOT_RETENTION_DAYS",
        "90",
        "Days finished jobs (prompts included), their reservations, per-member days and the admin "
        "audit are kept; older ones are deleted once a day, their usage kept as daily totals for "
        "the reports. 0 keeps everything.",
    ),
)

_BY_NAME = {v.name: v for v in VARIABLES}


@dataclass(frozen=True)
class Settings:
    """Validated settings. `repr()` hides the secrets."""

    discord_token: str | None = field(repr=False)
    dashscope_api_key: str | None = field(repr=False)
    dashscope_base_url: str
    discord_api_base: str | None
    database_url: str
    wan_model: str
    default_daily_limit: int
    max_concurrent_tasks: int
    max_jobs_per_user: int
    query_qps: float
    image_transport: Transport
    dev_guild: int | None
    log_level: str
    # Defaulted so code that builds Settings by hand (tests, other branches) keeps working.
    log_format: LogFormat = "text"
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    global_daily_limit: int = 100  # 0: no cap
    server_daily_limit: int = 50  # 0: no ceiling
    dm_daily_limit: int = 3  # 0: DMs off
    allowed_guilds: frozenset[int] = frozenset()  # empty: any server
    dm_anyone: bool = False  # with allowed_guilds: DMs for anyone, not only their members
    owner_ids: frozenset[int] = frozenset()
    price_per_image: float | None = None  # None: the region's list price
    price_currency: str = DEFAULT_CURRENCY
    # Text-to-image: None prices it like an edit.
    price_per_image_t2i: float | None = None
    text_to_image: bool = True
    shard_count: int | None = None
    shard_ids: tuple[int, ...] | None = None
    request_timeout: float = 30.0
    task_seconds: tuple[float, float] = (30.0, 120.0)
    lease_seconds: float = 15.0
    download_timeout: float = 30.0
    retention_days: int = 90  # 0: keep everything

    @property
    def price(self) -> float | None:
        """What one edited image costs, or None when unknown (a custom base URL, no price)."""
        if self.price_per_image is not None:
            return self.price_per_image
        region = self.region
        return REGION_PRICES.get(region) if region else None

    def price_for(self, kind: str) -> float | None:
        """What one image of a job of `kind` ("edit" or "imagine") costs, or None when unknown."""
        if kind == "imagine" and self.price_per_image_t2i is not None:
            return self.price_per_image_t2i
        return self.price

    @property
    def prices_differ(self) -> bool:
        """Whether an image made from text is priced apart from an edit."""
        return self.price_per_image_t2i is not None and self.price_per_image_t2i != self.price

    def allowed_here(self, guild_id: int | None) -> bool:
        """Whether the bot works in this server. A DM (`None`) is allowed here too: with an
        allowlist, whether it serves the member is `dm_needs_membership`'s question."""
        return guild_id is None or not self.allowed_guilds or guild_id in self.allowed_guilds

    @property
    def dm_needs_membership(self) -> bool:
        """Whether a DM serves only members of an allowed server (an allowlist is set and DMs are
        not opened to anyone): else anyone who can message the bot could spend the bot-wide cap."""
        return bool(self.allowed_guilds) and not self.dm_anyone and self.dm_daily_limit > 0

    @property
    def region(self) -> str | None:
        """`singapore` or `beijing` when the base URL is one of the official ones."""
        for name, url in REGIONS.items():
            if self.dashscope_base_url.rstrip("/") == url:
                return name
        return None


def _int(name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(name, f"expected a whole number from {low} to {high}") from None
    if not low <= value <= high:
        raise ConfigError(name, f"expected a whole number from {low} to {high}, got {value}")
    return value


def _float(name: str, raw: str, low: float, high: float) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(name, f"expected a number from {low:g} to {high:g}") from None
    if not low <= value <= high:
        raise ConfigError(name, f"expected a number from {low:g} to {high:g}, got {value:g}")
    return value


def _http_url(name: str, raw: str) -> str:
    parsed = urlparse(raw.strip())
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(name, "expected an http(s):// URL")
    return raw.strip().rstrip("/")


def _base_url(raw: str) -> str:
    word = raw.strip().lower()
    if word in REGIONS:
        return REGIONS[word]
    try:
        return _http_url("DASHSCOPE_BASE_URL", raw)
    except ConfigError:
        raise ConfigError(
            "DASHSCOPE_BASE_URL", "expected `singapore`, `beijing` or an https:// base URL"
        ) from None


def _database_url(raw: str) -> str:
    value = raw.strip()
    if value.startswith(("postgresql://", "postgres://")):
        credentials = urlparse(value).netloc.rpartition("@")[0]
        if credentials.endswith(":"):
            # `USER:@HOST`: a password left out by mistake (compose's POSTGRES_PASSWORD unset).
            raise ConfigError(
                "DATABASE_URL",
                "the password after `USER:` is empty; set it (with compose: POSTGRES_PASSWORD in "
                ".env)",
            )
        return value  # the driver checks the rest, and open_store says what is wrong
    if not value.startswith("sqlite:///") or len(value) == len("sqlite:///"):
        # Never echo the value: a PostgreSQL URL carries a password.
        raise ConfigError(
            "DATABASE_URL",
            "expected sqlite:///PATH (e.g. sqlite:///wanbot.db) or "
            "postgresql://USER:PASSWORD@HOST:PORT/DATABASE",
        )
    return value


def _secret(name: str, raw: str) -> str:
    value = raw.strip()
    if any(c.isspace() for c in value):
        # Never echo the value itself: it is a secret.
        raise ConfigError(name, "contains spaces; paste the value alone, without quotes or 'Bot '")
    return value


def _transport(raw: str) -> Transport:
    value = raw.strip().lower()
    if value not in TRANSPORTS:
        raise ConfigError("WAN_IMAGE_TRANSPORT", "expected one of url, base64, upload")
    return value  # type: ignore[return-value]


def _task_seconds(raw: str) -> tuple[float, float]:
    """`30-120`: the usual shortest and longest running time of a task, in seconds."""
    low, dash, high = raw.strip().partition("-")
    expected = "expected MIN-MAX seconds, like 30-120"
    if not dash:
        raise ConfigError("WAN_TASK_SECONDS", expected)
    shortest = _float("WAN_TASK_SECONDS", low, 0.05, 3600)
    longest = _float("WAN_TASK_SECONDS", high, 0.05, 3600)
    if longest < shortest:
        raise ConfigError("WAN_TASK_SECONDS", expected + " (MIN first)")
    return shortest, longest


def _ids(name: str, raw: str) -> frozenset[int]:
    """Comma- (or space-) separated Discord ids."""
    ids: set[int] = set()
    for word in raw.replace(",", " ").split():
        if not word.isdigit() or not 0 < int(word) < 2**63:
            raise ConfigError(name, f"expected comma-separated Discord ids, got {word!r}")
        ids.add(int(word))
    return frozenset(ids)


def _price(raw: str, name: str = "WAN_PRICE_PER_IMAGE") -> tuple[float, str | None]:
    """`0.2`, `0.2 CNY` or `0.03 USD`: a price and its currency code (None when not given)."""
    words = raw.split()
    currency = words[1].upper() if len(words) == 2 else None
    if len(words) not in (1, 2) or (
        currency is not None and (not currency.isalpha() or len(currency) != 3)
    ):
        raise ConfigError(name, "expected a price, optionally with a currency: 0.03 USD")
    return _float(name, words[0], 0, 1000), currency


def _flag(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "yes", "on", "1"):
        return True
    if value in ("false", "no", "off", "0"):
        return False
    raise ConfigError(name, "expected true or false")


def _shard_ids(raw: str | None, count: int | None) -> tuple[int, ...] | None:
    if raw is None:
        return None
    if count is None:
        raise ConfigError("WANBOT_SHARD_IDS", "set only together with WANBOT_SHARD_COUNT")
    try:
        ids = tuple(sorted({int(part) for part in raw.split(",") if part.strip()}))
    except ValueError:
        raise ConfigError(
            "WANBOT_SHARD_IDS", "shard numbers separated by commas, like 0,1"
        ) from None
    if not ids or not all(0 <= i < count for i in ids):
        raise ConfigError(
            "WANBOT_SHARD_IDS", f"shard numbers from 0 to {count - 1} (WANBOT_SHARD_COUNT={count})"
        )
    return ids


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(name, "expected true or false")


def _log_level(raw: str) -> str:
    value = raw.strip().upper()
    if value not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("WANBOT_LOG_LEVEL", "expected DEBUG, INFO, WARNING or ERROR")
    return value


def _log_format(raw: str) -> LogFormat:
    value = raw.strip().lower()
    if value not in LOG_FORMATS:
        raise ConfigError("WANBOT_LOG_FORMAT", "expected text or json")
    return value  # type: ignore[return-value]


def read_environment(
    environ: Mapping[str, str] | None = None, dotenv_path: str | Path | None = ".env"
) -> dict[str, str]:
    """The raw values: `.env` first, the real environment on top (it wins)."""
    values: dict[str, str] = {}
    if dotenv_path is not None and Path(dotenv_path).is_file():
        values.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    values.update(os.environ if environ is None else environ)
    return values


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    dotenv_path: str | Path | None = ".env",
    require_discord: bool = True,
    require_api_key: bool = True,
) -> Settings:
    """Read and validate every setting; raise `ConfigError` on the first bad one."""
    raw = read_environment(environ, dotenv_path)

    def get(name: str) -> str | None:
        value = raw.get(name)
        if value is None or value.strip() == "":
            return _BY_NAME[name].default
        return value

    def parsed(name: str, parse: Callable[[str], Any]) -> Any:
        value = get(name)
        return None if value is None else parse(value)

    token = parsed("DISCORD_TOKEN", lambda v: _secret("DISCORD_TOKEN", v))
    if require_discord and not token:
        raise ConfigError(
            "DISCORD_TOKEN", "missing: set it to your bot's token (developer portal, Bot tab)"
        )
    key = parsed("DASHSCOPE_API_KEY", lambda v: _secret("DASHSCOPE_API_KEY", v))
    if require_api_key and not key:
        raise ConfigError(
            "DASHSCOPE_API_KEY",
            "missing: set it to your Model Studio API key, or run with --sandbox to try the bot for free",
        )
    price = parsed("WAN_PRICE_PER_IMAGE", _price)
    currency = (price[1] if price else None) or DEFAULT_CURRENCY
    price_t2i = parsed("WAN_PRICE_PER_IMAGE_T2I", lambda v: _price(v, "WAN_PRICE_PER_IMAGE_T2I"))
    if price_t2i and price_t2i[1] not in (None, currency):
        # The reports add both prices up: one currency for both.
        raise ConfigError(
            "WAN_PRICE_PER_IMAGE_T2I",
            f"in the currency of WAN_PRICE_PER_IMAGE ({currency}); set both in one currency",
        )
    shard_count = parsed("WANBOT_SHARD_COUNT", lambda v: _int("WANBOT_SHARD_COUNT", v, 1, 100_000))
    return Settings(
        discord_token=token,
        dashscope_api_key=key,
        dashscope_base_url=_base_url(get("DASHSCOPE_BASE_URL") or "singapore"),
        discord_api_base=parsed("DISCORD_API_BASE", lambda v: _http_url("DISCORD_API_BASE", v)),
        database_url=_database_url(get("DATABASE_URL") or ""),
        wan_model=(get("WAN_MODEL") or "").strip(),
        default_daily_limit=_int(
            "WAN_DEFAULT_DAILY_LIMIT", get("WAN_DEFAULT_DAILY_LIMIT") or "", 0, 1000
        ),
        max_concurrent_tasks=_int(
            "WAN_MAX_CONCURRENT_TASKS", get("WAN_MAX_CONCURRENT_TASKS") or "", 1, 50
        ),
        max_jobs_per_user=_int("WAN_MAX_JOBS_PER_USER", get("WAN_MAX_JOBS_PER_USER") or "", 1, 50),
        query_qps=_float("WAN_QUERY_QPS", get("WAN_QUERY_QPS") or "", 0.1, 20),
        image_transport=_transport(get("WAN_IMAGE_TRANSPORT") or ""),
        dev_guild=parsed("WANBOT_DEV_GUILD", lambda v: _int("WANBOT_DEV_GUILD", v, 1, 2**63 - 1)),
        log_level=_log_level(get("WANBOT_LOG_LEVEL") or "INFO"),
        log_format=_log_format(get("WANBOT_LOG_FORMAT") or "text"),
        metrics_port=parsed(
            "WANBOT_METRICS_PORT", lambda v: _int("WANBOT_METRICS_PORT", v, 1, 65535)
        ),
        metrics_host=(get("WANBOT_METRICS_HOST") or "127.0.0.1").strip(),
        global_daily_limit=_int(
            "WAN_GLOBAL_DAILY_LIMIT", get("WAN_GLOBAL_DAILY_LIMIT") or "", 0, 1_000_000
        ),
        server_daily_limit=_int(
            "WAN_SERVER_DAILY_LIMIT", get("WAN_SERVER_DAILY_LIMIT") or "", 0, 1_000_000
        ),
        dm_daily_limit=_int("WAN_DM_DAILY_LIMIT", get("WAN_DM_DAILY_LIMIT") or "", 0, 1000),
        allowed_guilds=_ids("WAN_ALLOWED_GUILDS", get("WAN_ALLOWED_GUILDS") or ""),
        dm_anyone=_bool("WAN_DM_ANYONE", get("WAN_DM_ANYONE") or "false"),
        owner_ids=_ids("WANBOT_OWNER_IDS", get("WANBOT_OWNER_IDS") or ""),
        price_per_image=price[0] if price else None,
        price_currency=currency,
        price_per_image_t2i=price_t2i[0] if price_t2i else None,
        text_to_image=_flag("WAN_TEXT_TO_IMAGE", get("WAN_TEXT_TO_IMAGE") or "true"),
        shard_count=shard_count,
        shard_ids=_shard_ids(get("WANBOT_SHARD_IDS"), shard_count),
        request_timeout=_float("WAN_REQUEST_TIMEOUT", get("WAN_REQUEST_TIMEOUT") or "", 1, 600),
        task_seconds=_task_seconds(get("WAN_TASK_SECONDS") or ""),
        lease_seconds=_float("WANBOT_LEASE_SECONDS", get("WANBOT_LEASE_SECONDS") or "", 1, 3600),
        download_timeout=_float(
            "WANBOT_DOWNLOAD_TIMEOUT", get("WANBOT_DOWNLOAD_TIMEOUT") or "", 1, 600
        ),
        retention_days=_int("WANBOT_RETENTION_DAYS", get("WANBOT_RETENTION_DAYS") or "", 0, 36_500),
    )


def store_limits(settings: Settings) -> Limits:
    """The owner's bounds as the store applies them."""
    return Limits(
        global_daily=settings.global_daily_limit,
        server_ceiling=settings.server_daily_limit,
        dm_daily=settings.dm_daily_limit,
    )
