"""Settings: defaults, region words, one-line errors that never echo secrets, and no drift with the docs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import REGIONS, VARIABLES, ConfigError, load_settings
from bot.wan import PollConfig

ROOT = Path(__file__).resolve().parents[2]
BASE = {"DISCORD_TOKEN": "tok.en-123", "DASHSCOPE_API_KEY": "sk-abcdef123456"}


def load(**env: str):
    return load_settings({**BASE, **env}, dotenv_path=None)


def test_defaults() -> None:
    s = load()
    assert s.dashscope_base_url == REGIONS["singapore"]
    assert s.database_url == "sqlite:///wanbot.db"
    assert s.wan_model == "wan2.5-i2i-preview"
    assert (s.default_daily_limit, s.max_concurrent_tasks, s.query_qps) == (10, 5, 10.0)
    assert s.image_transport == "base64"
    assert s.max_jobs_per_user == 2
    assert s.dev_guild is None and s.discord_api_base is None


@pytest.mark.parametrize(
    ("word", "url"), [("singapore", REGIONS["singapore"]), ("Beijing", REGIONS["beijing"])]
)
def test_region_words(word: str, url: str) -> None:
    assert load(DASHSCOPE_BASE_URL=word).dashscope_base_url == url


@pytest.mark.parametrize(
    "value", ["postgresql://bot:pw@db.example:5432/wanbot", "postgres://bot@localhost/wanbot"]
)
def test_postgresql_database_urls(value: str) -> None:
    assert load(DATABASE_URL=value).database_url == value


@pytest.mark.parametrize(
    ("name", "value"),
    [("DATABASE_URL", "mysql://bot:hunter2@db.example/wanbot")],
)
def test_a_bad_database_url_is_not_echoed(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(**{name: value})
    assert "hunter2" not in str(info.value) and "postgresql://" in str(info.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WAN_DEFAULT_DAILY_LIMIT", "ten"),
        ("WAN_MAX_CONCURRENT_TASKS", "0"),
        ("WAN_QUERY_QPS", "50"),
        ("WAN_IMAGE_TRANSPORT", "ftp"),
        ("DATABASE_URL", "mysql://x"),
        ("DASHSCOPE_BASE_URL", "mars"),
        ("DISCORD_API_BASE", "not a url"),
        ("WANBOT_DEV_GUILD", "abc"),
    ],
)
def test_malformed_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(**{name: value})
    assert info.value.variable == name
    assert str(info.value).startswith(name) and "\n" not in str(info.value)


def test_missing_secrets() -> None:
    with pytest.raises(ConfigError, match="DISCORD_TOKEN"):
        load_settings({"DASHSCOPE_API_KEY": "sk-1"}, dotenv_path=None)
    with pytest.raises(ConfigError, match="--sandbox"):
        load_settings({"DISCORD_TOKEN": "t"}, dotenv_path=None)
    assert (
        load_settings(
            {"DISCORD_TOKEN": "t"}, dotenv_path=None, require_api_key=False
        ).dashscope_api_key
        is None
    )


def test_secret_never_echoed_or_in_repr() -> None:
    with pytest.raises(ConfigError) as info:
        load(DASHSCOPE_API_KEY="sk-secret value")
    assert "sk-secret" not in str(info.value)
    assert "sk-abcdef123456" not in repr(load()) and "tok.en-123" not in repr(load())


def test_dotenv_loaded_and_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "WAN_DEFAULT_DAILY_LIMIT=3\nWAN_MAX_JOBS_PER_USER=4\nDISCORD_TOKEN=fromfile\n"
    )
    s = load_settings(
        {"DASHSCOPE_API_KEY": "sk-1", "WAN_MAX_JOBS_PER_USER": "7"}, dotenv_path=env_file
    )
    assert s.default_daily_limit == 3 and s.max_jobs_per_user == 7 and s.discord_token == "fromfile"


def test_env_example_lists_every_variable() -> None:
    text = (ROOT / ".env.example").read_text()
    names = re.findall(r"^([A-Z][A-Z0-9_]*)=", text, flags=re.M)
    assert names == [v.name for v in VARIABLES]
    for v in VARIABLES:
        assert f"{v.name}={v.default or ''}\n" in text


def test_bad_setting_exits_2_with_one_line(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "DISCORD_TOKEN": "t",
        "DASHSCOPE_API_KEY": "sk-1",
        "WAN_QUERY_QPS": "fast",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "WAN_QUERY_QPS" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_owner_settings() -> None:
    """The owner's bounds: defaults, id lists, the price by region, and a price with a currency."""
    base = {"DISCORD_TOKEN": "t", "DASHSCOPE_API_KEY": "k"}
    s = load_settings(base, dotenv_path=None)
    assert (s.global_daily_limit, s.server_daily_limit, s.dm_daily_limit) == (100, 50, 3)
    assert (s.allowed_guilds, s.owner_ids) == (frozenset(), frozenset())
    assert (s.price, s.price_currency) == (0.220177, "CNY")
    assert s.allowed_here(123) and s.allowed_here(None)
    s = load_settings(
        {
            **base,
            "DASHSCOPE_BASE_URL": "beijing",
            "WAN_ALLOWED_GUILDS": "11, 22",
            "WANBOT_OWNER_IDS": "5",
        },
        dotenv_path=None,
    )
    assert s.price == 0.20 and s.allowed_guilds == {11, 22} and s.owner_ids == {5}
    assert s.allowed_here(22) and not s.allowed_here(33) and s.allowed_here(None)
    s = load_settings({**base, "WAN_PRICE_PER_IMAGE": "0.03 usd"}, dotenv_path=None)
    assert (s.price, s.price_currency) == (0.03, "USD")
    for name, value in (
        ("WAN_ALLOWED_GUILDS", "11,abc"),
        ("WANBOT_OWNER_IDS", "-3"),
        ("WAN_PRICE_PER_IMAGE", "cheap"),
        ("WAN_GLOBAL_DAILY_LIMIT", "-1"),
    ):
        with pytest.raises(ConfigError) as info:
            load_settings({**base, name: value}, dotenv_path=None)
        assert info.value.variable == name


def test_timing_settings_parse_and_refuse_nonsense() -> None:
    """WAN_REQUEST_TIMEOUT, WAN_TASK_SECONDS and WANBOT_LEASE_SECONDS: defaults that match Wan and
    the 15 s lease, values a user sets, and one clear line for a bad value."""
    base = {"DISCORD_TOKEN": "t", "DASHSCOPE_API_KEY": "sk-1"}
    default = load_settings(base, dotenv_path=None)
    assert (default.request_timeout, default.task_seconds, default.lease_seconds) == (
        30.0,
        (30.0, 120.0),
        15.0,
    )
    fast = load_settings(
        {
            **base,
            "WAN_REQUEST_TIMEOUT": "5",
            "WAN_TASK_SECONDS": "0.2-3",
            "WANBOT_LEASE_SECONDS": "3",
        },
        dotenv_path=None,
    )
    assert (fast.request_timeout, fast.task_seconds, fast.lease_seconds) == (5.0, (0.2, 3.0), 3.0)
    assert PollConfig.for_tasks(*default.task_seconds) == PollConfig()  # Wan's own plan unchanged
    # Short tasks keep the 3 s running floor: 0.5 s floors alone spent the whole query budget.
    assert PollConfig.for_tasks(*fast.task_seconds).running_max_interval == 3.0
    for name, value in [
        ("WAN_TASK_SECONDS", "30"),
        ("WAN_TASK_SECONDS", "120-30"),
        ("WAN_REQUEST_TIMEOUT", "0"),
        ("WANBOT_LEASE_SECONDS", "soon"),
    ]:
        with pytest.raises(ConfigError) as info:
            load_settings({**base, name: value}, dotenv_path=None)
        assert name in str(info.value) and "\n" not in str(info.value)
