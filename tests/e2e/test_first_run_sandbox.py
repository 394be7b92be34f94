"""A new admin's first minutes, as real subprocesses: `python -m bot` without a key, `--sandbox` from a
`.env` made from `.env.example`, a /wanedit answered by the sandbox, SIGTERM, and `python -m bot sync`."""

from __future__ import annotations

import io
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.__main__ import SANDBOX_STATUS, sandbox_database_url
from bot.sandbox import Emulator, EmulatorConfig
from bot.store import JobState, open_store
from tests.support.fake_discord import FakeDiscord
from tests.support.first_run import API_KEY, REPO, TOKEN, base_env, run_cli, running_cli


@pytest.fixture
async def fd() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(token=TOKEN) as fake:
        yield fake


def png(width: int = 512, height: int = 512) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (40, 120, 200)).save(out, "PNG")
    return out.getvalue()


def quick_start_env_file(folder: Path) -> None:
    """What the README's quick start has a new admin do: copy `.env.example`, paste the token."""
    example = (REPO / ".env.example").read_text()
    assert "\nDISCORD_TOKEN=\n" in example
    (folder / ".env").write_text(
        example.replace("\nDISCORD_TOKEN=\n", f"\nDISCORD_TOKEN={TOKEN}\n")
    )


def embed_text(message: dict[str, Any]) -> str:
    parts: list[str] = []
    for embed in message.get("embeds", []):
        parts += [embed.get("title") or "", embed.get("description") or ""]
        parts += [f"{f.get('name')}: {f.get('value')}" for f in embed.get("fields", [])]
        parts.append((embed.get("footer") or {}).get("text") or "")
    return "\n".join(parts)


async def test_without_key_or_sandbox_it_says_which_to_use(tmp_path: Path) -> None:
    result = await run_cli(env=base_env(DISCORD_TOKEN=TOKEN), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    (message,) = result.stderr.strip().splitlines()  # one line, no traceback
    assert message.startswith("wanbot: DASHSCOPE_API_KEY: missing")
    assert "--sandbox" in message and TOKEN not in message
    assert not (tmp_path / "wanbot.db").exists()  # nothing created


async def test_sandbox_first_run(fd: FakeDiscord, tmp_path: Path) -> None:
    admin = fd.add_user("admin")
    guild = fd.add_guild("My server", owner=admin)
    channel = fd.add_text_channel(guild, "general")
    fd.add_member(guild, admin, permissions=1 << 5)
    quick_start_env_file(tmp_path)
    # Only the address of the fake comes from the environment (it wins over the .env file).
    env = base_env(DISCORD_API_BASE=fd.api_base)
    async with running_cli("--sandbox", env=env, cwd=tmp_path) as bot:
        warning = await bot.wait_for_line(r"WARNING .*SANDBOX MODE")
        assert "not from Wan" in warning and "nothing is billed" in warning
        await bot.wait_for_line(r"invite the bot with: https://discord.com/oauth2/authorize")
        await bot.alongside(fd.wait_until(lambda: fd.identify_payloads, timeout=30))
        # Members see it too: the bot's status says sandbox from the first IDENTIFY.
        # (discord.py sends the start-up activity in IDENTIFY's legacy `game` field.)
        presence = fd.identify_payloads[0]["d"]["presence"]
        activities = presence.get("activities") or [presence.get("game") or {}]
        assert [a.get("state") for a in activities] == [SANDBOX_STATUS]
        assert [c["name"] for c in fd.commands() if c["name"] == "wanedit"] == ["wanedit"]

        image = fd.add_cdn_file(png(), "cat.png", "image/png")
        since = fd.mark()
        await fd.slash(
            guild, channel, admin, "wanedit", {"prompt": "make it blue [slow:0.2]", "image": image}
        )
        result = await bot.alongside(
            fd.wait_for_message(None, lambda m: bool(m.get("attachments")), timeout=30, since=since)
        )
        (name_and_bytes,) = fd.files(result)
        assert name_and_bytes[1].startswith(b"\x89PNG")
        text = embed_text(result)
        assert "Sandbox result" in text and "Nothing was billed" in text

        assert await bot.stop(signal.SIGTERM) == 0
        assert "received SIGTERM" in bot.log
    assert "Traceback" not in bot.log, bot.log
    assert TOKEN not in bot.log
    # The sandbox kept its own database; the real one was never touched.
    assert (tmp_path / "wanbot.sandbox.db").is_file()
    assert not (tmp_path / "wanbot.db").exists()


async def test_stopping_mid_job_is_clean_and_the_job_resumes(
    fd: FakeDiscord, tmp_path: Path
) -> None:
    admin = fd.add_user("admin")
    guild = fd.add_guild("My server", owner=admin)
    channel = fd.add_text_channel(guild, "general")
    fd.add_member(guild, admin, permissions=0)
    env = base_env(DISCORD_TOKEN=TOKEN, DISCORD_API_BASE=fd.api_base)
    async with running_cli("--sandbox", env=env, cwd=tmp_path) as bot:
        await bot.alongside(fd.wait_until(lambda: fd.identify_payloads, timeout=30))
        image = fd.add_cdn_file(png(), "cat.png", "image/png")
        ix = await fd.slash(
            guild, channel, admin, "wanedit", {"prompt": "wait [slow:60]", "image": image}
        )
        await bot.wait_for_line(r"job 1: Wan task \S+ created")
        assert await bot.stop(signal.SIGTERM, timeout=10) == 0
    assert "Traceback" not in bot.log, bot.log
    async with running_cli("--sandbox", env=env, cwd=tmp_path) as again:
        # The new emulator does not know the old task, so the job is failed and refunded.
        await again.wait_for_line(r"resumed 1 unfinished job\(s\)")
        told = await again.alongside(
            ix.wait_original(lambda m: "No result" in embed_text(m), timeout=30)
        )
        assert await again.stop(signal.SIGTERM, timeout=10) == 0
    assert "Traceback" not in again.log, again.log
    assert "Nothing was charged" in embed_text(told)
    store = await open_store(f"sqlite:///{tmp_path / 'wanbot.sandbox.db'}")
    try:
        job = await store.get_job(1)
        assert job is not None and job.state == JobState.FAILED
        status = await store.quota_status(guild.id, admin.id)
        assert (status.used, status.held) == (0, 0)  # the hold was given back
    finally:
        await store.close()


async def test_real_mode_starts_and_stops(fd: FakeDiscord, tmp_path: Path) -> None:
    """`python -m bot` with a key: DashScope here is the emulator, but the bot does not know it."""
    fd.add_guild("My server")
    async with Emulator(EmulatorConfig(api_keys={API_KEY})) as wan:
        env = base_env(
            DISCORD_TOKEN=TOKEN,
            DISCORD_API_BASE=fd.api_base,
            DASHSCOPE_API_KEY=API_KEY,
            DASHSCOPE_BASE_URL=wan.base_url,
            DATABASE_URL=f"sqlite:///{tmp_path / 'wanbot.db'}",
        )
        async with running_cli(env=env, cwd=tmp_path) as bot:
            await bot.wait_for_line(r"invite the bot with: https://discord.com/oauth2/authorize")
            await bot.alongside(fd.wait_until(lambda: fd.identify_payloads, timeout=30))
            presence = fd.identify_payloads[0]["d"].get("presence") or {}
            assert not (presence.get("activities") or presence.get("game"))  # no sandbox status
            assert await bot.stop(signal.SIGINT) == 0  # Ctrl-C
    assert "Traceback" not in bot.log, bot.log
    assert "SANDBOX" not in bot.log
    assert "received SIGINT" in bot.log
    assert TOKEN not in bot.log and API_KEY not in bot.log
    assert (tmp_path / "wanbot.db").is_file() and not (tmp_path / "wanbot.sandbox.db").exists()


async def test_sync_forces_a_command_sync(fd: FakeDiscord, tmp_path: Path) -> None:
    env = base_env(
        DISCORD_TOKEN=TOKEN,
        DISCORD_API_BASE=fd.api_base,
        DASHSCOPE_API_KEY="sk-not-used-by-sync-0123",
        DATABASE_URL=f"sqlite:///{tmp_path / 'wanbot.db'}",
    )
    for expected in (1, 2):  # forced: a second run syncs again though nothing changed
        result = await run_cli("sync", env=env, cwd=tmp_path)
        assert result.returncode == 0, result.output
        assert "commands synced" in result.stderr
        assert fd.command_sync_count == expected
    assert "wanedit" in {c["name"] for c in fd.commands()}
    assert not fd.identify_payloads  # sync only logs in over REST; it never connects the gateway


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///wanbot.db", "sqlite:///wanbot.sandbox.db"),
        ("sqlite:////var/lib/wanbot/bot.sqlite3", "sqlite:////var/lib/wanbot/bot.sandbox.sqlite3"),
        ("sqlite:///data/wanbot", "sqlite:///data/wanbot.sandbox"),
        ("sqlite:///wanbot.sandbox.db", "sqlite:///wanbot.sandbox.db"),
    ],
)
def test_sandbox_database_sits_next_to_the_real_one(url: str, expected: str) -> None:
    assert sandbox_database_url(url) == expected
