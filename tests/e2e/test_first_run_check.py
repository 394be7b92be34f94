"""`python -m bot check` as a real subprocess against the loopback fake Discord and the Wan emulator."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from bot.config import load_settings
from bot.sandbox import Emulator, EmulatorConfig
from cogs.health.check import check_dashscope, check_settings
from tests.support.fake_discord import GATEWAY_MESSAGE_CONTENT_LIMITED, FakeDiscord
from tests.support.first_run import (
    API_KEY,
    OTHER_REGION_KEY,
    TOKEN,
    Finished,
    base_env,
    run_cli,
)


@pytest.fixture
async def wan() -> AsyncIterator[Emulator]:
    """DashScope in one region, which refuses keys of the other one (401, as the real one does)."""
    config = EmulatorConfig(api_keys={API_KEY}, other_region_keys={OTHER_REGION_KEY})
    async with Emulator(config) as emu:
        yield emu


@pytest.fixture
async def discord_fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(token=TOKEN) as fd:
        fd.add_guild("Test server")
        yield fd


def env_for(fd: FakeDiscord, emu: Emulator, tmp_path: Path, **overrides: str) -> dict[str, str]:
    settings = {
        "DISCORD_API_BASE": fd.api_base,
        "DISCORD_TOKEN": TOKEN,
        "DASHSCOPE_BASE_URL": emu.base_url,
        "DASHSCOPE_API_KEY": API_KEY,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'wanbot.db'}",
    }
    settings.update(overrides)
    return base_env(**{k: v for k, v in settings.items() if v})


def line(result: Finished, name: str) -> str:
    """The report's line for check `name`."""
    found = [
        ln for ln in result.stdout.splitlines() if re.match(rf"\[(ok|FIX|--|!!)\] +{name}:", ln)
    ]
    assert len(found) == 1, result.output
    return found[0]


def assert_no_secrets(result: Finished) -> None:
    for secret in (TOKEN, API_KEY, OTHER_REGION_KEY):
        assert secret not in result.output


async def check(fd: FakeDiscord, emu: Emulator, tmp_path: Path, *args: str, **env: str) -> Finished:
    result = await run_cli("check", *args, env=env_for(fd, emu, tmp_path, **env), cwd=tmp_path)
    assert_no_secrets(result)
    assert "Traceback" not in result.output, result.output
    return result


async def test_all_checks_pass(discord_fake: FakeDiscord, wan: Emulator, tmp_path: Path) -> None:
    fd = discord_fake
    result = await check(fd, wan, tmp_path)
    assert result.returncode == 0, result.output
    assert line(result, "settings").startswith("[ok]")
    assert line(result, "database").startswith("[ok]")
    assert (tmp_path / "wanbot.db").is_file()  # created and migrated
    token_line = line(result, "discord token")
    assert token_line.startswith("[ok]")
    assert f"bot WanBot (id {fd.bot_user.id})" in token_line
    assert f"(id {fd.application_id})" in token_line and "in 1 server" in token_line
    assert "Message Content intent off" in line(result, "reply edits")
    assert "Edit with Wan" in line(result, "reply edits")
    assert line(result, "dashscope key").startswith("[ok]")
    assert line(result, "models") == (
        "[ok]  models: the key may use wan2.5-i2i-preview (edits) and wan2.5-t2i-preview "
        "(/wanimagine)"
    )
    # Written out rather than taken from the code, so a change to the permissions shows here.
    permissions = (
        (1 << 6)  # add_reactions
        | (1 << 10)  # view_channel
        | (1 << 11)  # send_messages
        | (1 << 14)  # embed_links
        | (1 << 15)  # attach_files
        | (1 << 16)  # read_message_history
        | (1 << 35)  # create_public_threads
        | (1 << 38)  # send_messages_in_threads
    )
    assert permissions == 309_237_763_136
    invite = re.search(r"https://discord\.com/oauth2/authorize\?\S+", result.stdout)
    assert invite is not None, result.stdout
    query = parse_qs(urlsplit(invite[0]).query)
    assert query == {
        "client_id": [str(fd.application_id)],
        "scope": ["bot applications.commands"],
        "permissions": [str(permissions)],
    }
    # The report ends with one line per check, then the verdict.
    tail = result.stdout.strip().splitlines()[-11:]
    assert [ln.split(":", 1)[0] for ln in tail[:9]] == [
        "[ok]  settings",
        "[ok]  database",
        "[ok]  discord token",
        "[!!]  owner",  # the fake's application is public, and any server may use it
        "[ok]  reply edits",
        "[ok]  cost bounds",
        "[ok]  DMs",
        "[ok]  dashscope key",
        "[ok]  models",
    ]
    assert line(result, "DMs") == "[ok]  DMs: anyone who can message the bot, 3 images a day each"
    assert tail[-1] == "All checks passed."
    # It asked Discord with the token, and checked the key without creating (paying for) a task.
    paths = {(r.method, r.path, r.status) for r in fd.request_log}
    assert ("GET", "/users/@me", 200) in paths and ("GET", "/applications/@me", 200) in paths
    assert wan.created_count == 0 and not wan.tasks


async def test_message_content_intent_on_means_replies_to_anyone(
    wan: Emulator, tmp_path: Path
) -> None:
    async with FakeDiscord(token=TOKEN, application_flags=GATEWAY_MESSAGE_CONTENT_LIMITED) as fd:
        result = await check(fd, wan, tmp_path)
    assert result.returncode == 0, result.output
    assert "intent on: replies to anyone's images" in line(result, "reply edits")
    assert "not in any server yet: open the invite URL" in line(result, "discord token")


async def test_wrong_token(discord_fake: FakeDiscord, wan: Emulator, tmp_path: Path) -> None:
    result = await check(discord_fake, wan, tmp_path, DISCORD_TOKEN="not-the-right-token")
    assert result.returncode == 1
    assert line(result, "discord token").startswith(
        "[FIX] discord token: Discord refused the token"
    )
    assert line(result, "reply edits").startswith("[--]")
    assert line(result, "dashscope key").startswith("[ok]")  # the other checks still ran
    assert "oauth2/authorize" not in result.stdout  # no application, no invite URL
    assert "not-the-right-token" not in result.output
    assert result.stdout.strip().endswith(
        "1 check to fix (marked [FIX]); then run `python -m bot check` again."
    )


async def test_wrong_key(discord_fake: FakeDiscord, wan: Emulator, tmp_path: Path) -> None:
    result = await check(discord_fake, wan, tmp_path, DASHSCOPE_API_KEY="sk-wrong-0123456789")
    assert result.returncode == 1
    fix = line(result, "dashscope key")
    assert fix.startswith("[FIX]") and "refused the key" in fix and "DASHSCOPE_API_KEY" not in fix
    assert "sk-wrong-0123456789" not in result.output
    assert line(result, "discord token").startswith("[ok]")
    assert wan.created_count == 0


async def test_key_from_the_other_region(
    discord_fake: FakeDiscord, wan: Emulator, tmp_path: Path
) -> None:
    result = await check(discord_fake, wan, tmp_path, DASHSCOPE_API_KEY=OTHER_REGION_KEY)
    assert result.returncode == 1
    fix = line(result, "dashscope key")
    assert fix.startswith("[FIX]") and "region" in fix and "one region only" in fix


async def test_unwritable_database(
    discord_fake: FakeDiscord, wan: Emulator, tmp_path: Path
) -> None:
    (tmp_path / "taken.db").mkdir()  # a folder where the file should be: unwritable, even for root
    result = await check(
        discord_fake, wan, tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'taken.db'}"
    )
    assert result.returncode == 1
    fix = line(result, "database")
    assert fix.startswith("[FIX] database: Cannot write the database") and "DATABASE_URL" in fix
    assert line(result, "discord token").startswith("[ok]")


async def test_missing_token_and_key_are_lines_to_fix(
    discord_fake: FakeDiscord, wan: Emulator, tmp_path: Path
) -> None:
    result = await check(discord_fake, wan, tmp_path, DISCORD_TOKEN="", DASHSCOPE_API_KEY="")
    assert result.returncode == 1
    assert "DISCORD_TOKEN is not set" in line(result, "discord token")
    fix = line(result, "dashscope key")
    assert "DASHSCOPE_API_KEY is not set" in fix and "--sandbox" in fix
    assert "2 checks to fix" in result.stdout


async def test_malformed_setting(discord_fake: FakeDiscord, wan: Emulator, tmp_path: Path) -> None:
    result = await check(discord_fake, wan, tmp_path, WAN_DEFAULT_DAILY_LIMIT="lots")
    assert result.returncode == 1
    assert line(result, "settings").startswith("[FIX] settings: WAN_DEFAULT_DAILY_LIMIT: expected")
    assert (
        not discord_fake.request_log
    )  # nothing else can be checked with settings that do not parse


async def test_sandbox_needs_no_key(
    discord_fake: FakeDiscord, wan: Emulator, tmp_path: Path
) -> None:
    result = await check(discord_fake, wan, tmp_path, "--sandbox", DASHSCOPE_API_KEY="")
    assert result.returncode == 0, result.output
    assert result.stdout.startswith("wanbot check (sandbox mode)")
    assert "sandbox: the built-in Wan emulator" in line(result, "dashscope key")
    # The sandbox keeps its own database, apart from the real one.
    assert "wanbot.sandbox.db" in line(result, "database")
    assert (tmp_path / "wanbot.sandbox.db").is_file() and not (tmp_path / "wanbot.db").exists()
    assert wan.created_count == 0  # the real (here: the test's) DashScope was not asked


# ---- in-process: what the subprocess cannot reach --------------------------------------------


async def test_a_key_of_the_other_region_is_named(tmp_path: Path) -> None:
    """With the official base URLs, a refused key is tried in the other region to say which it is."""
    singapore = Emulator(EmulatorConfig(api_keys={API_KEY}, other_region_keys={OTHER_REGION_KEY}))
    beijing = Emulator(EmulatorConfig(api_keys={OTHER_REGION_KEY}, region="beijing"))
    async with singapore, beijing:
        regions = {"singapore": singapore.base_url, "beijing": beijing.base_url}
        settings = load_settings(
            {
                "DASHSCOPE_API_KEY": OTHER_REGION_KEY,
                "DASHSCOPE_BASE_URL": singapore.base_url,
                "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
            },
            dotenv_path=None,
            require_discord=False,
        )
        result = await check_dashscope(settings, sandbox=False, regions=regions)
        assert not result.ok
        assert result.detail == (
            "this key belongs to the beijing region, not singapore: set DASHSCOPE_BASE_URL=beijing"
        )
        wrong = load_settings(
            {"DASHSCOPE_API_KEY": "sk-nowhere-123", "DASHSCOPE_BASE_URL": beijing.base_url},
            dotenv_path=None,
            require_discord=False,
        )
        result = await check_dashscope(wrong, sandbox=False, regions=regions)
        assert (
            not result.ok
            and "refused the key in beijing (and in the other region)" in result.detail
        )
        good = await check_dashscope(
            replace(settings, dashscope_base_url=beijing.base_url),
            sandbox=False,
            regions=regions,
        )
        assert (
            good.ok
            and good.detail == "accepted in region beijing (checked without creating a task)"
        )
    assert singapore.created_count == 0 and beijing.created_count == 0


@pytest.mark.parametrize(
    ("region", "transport", "ok"),
    [
        ("beijing", "url", False),
        ("singapore", "upload", False),
        ("singapore", "url", True),
        ("beijing", "upload", True),
        ("beijing", "base64", True),
        ("singapore", "base64", True),
    ],
)
def test_transport_must_suit_the_region(region: str, transport: str, ok: bool) -> None:
    settings = load_settings(
        {"DASHSCOPE_BASE_URL": region, "WAN_IMAGE_TRANSPORT": transport},
        dotenv_path=None,
        require_discord=False,
        require_api_key=False,
    )
    result = check_settings(settings, sandbox=False)
    assert result.ok is ok
    if not ok:
        assert f"WAN_IMAGE_TRANSPORT={transport}" in result.detail and "base64" in result.detail
    assert check_settings(settings, sandbox=True).ok  # the emulator takes every transport


async def test_check_prints_the_owner_the_caps_and_the_worst_case(
    wan: Emulator, tmp_path: Path
) -> None:
    """The owner sees who may use /wanowner, the caps in force and the most a day can cost."""
    async with FakeDiscord(token=TOKEN) as fd:
        guild = fd.add_guild("Test server")
        captain, dev = fd.add_user("captain"), fd.add_user("dev")
        fd.set_team("Crew", captain, [(dev, "developer"), (fd.add_user("viewer"), "read_only")])
        fd.world.bot_public = False
        result = await check(
            fd,
            wan,
            tmp_path,
            WANBOT_OWNER_IDS="42",
            WAN_ALLOWED_GUILDS=str(guild.id),
            WAN_PRICE_PER_IMAGE="0.2",
            WAN_GLOBAL_DAILY_LIMIT="40",
        )
    assert result.returncode == 0, result.output
    owner = line(result, "owner")
    ids = ", ".join(str(i) for i in sorted([42, captain.id, dev.id]))
    assert owner == (
        f"[ok]  owner: team Crew (user ids {ids}), WANBOT_OWNER_IDS included; works only in 1 "
        "allowed server(s)"
    )
    assert line(result, "cost bounds") == (
        "[ok]  cost bounds: bot-wide 40 images/day, per server 50 images/day, DMs 3 images per "
        "member; price 0.20 CNY per image (WAN_PRICE_PER_IMAGE); worst case per day 8.00 CNY "
        "(40 images × 0.20 CNY)"
    )


async def test_check_warns_when_nothing_bounds_the_bill(
    discord_fake: FakeDiscord, wan: Emulator, tmp_path: Path
) -> None:
    """WAN_GLOBAL_DAILY_LIMIT=0 is allowed, and `check` says the bill is then unbounded."""
    result = await check(discord_fake, wan, tmp_path, WAN_GLOBAL_DAILY_LIMIT="0")
    assert result.returncode == 0, result.output
    cost = line(result, "cost bounds")
    assert cost.startswith("[!!]") and "bot-wide no cap" in cost and "unbounded" in cost
    owner = line(result, "owner")
    assert owner.startswith("[!!]") and "PUBLIC" in owner and "untick Public Bot" in owner
    assert f"user ids {discord_fake.world.owner.id}" in owner


async def test_a_model_the_key_may_not_use_is_a_line_to_fix(
    discord_fake: FakeDiscord, tmp_path: Path
) -> None:
    config = EmulatorConfig(api_keys={API_KEY}, denied_models={"wan2.5-t2i-preview"})
    async with Emulator(config) as emu:
        result = await check(discord_fake, emu, tmp_path)
        off = await check(discord_fake, emu, tmp_path, WAN_TEXT_TO_IMAGE="false")
        assert emu.created_count == 0  # both models checked without a task
    assert result.returncode == 1
    assert line(result, "models") == (
        "[FIX] models: the key may use wan2.5-i2i-preview (edits); wan2.5-t2i-preview "
        "(/wanimagine) refused: Model.AccessDenied: this key's workspace may not use the model: "
        "use a key of the default workspace or grant the model to this one, or set "
        "WAN_TEXT_TO_IMAGE=false to leave /wanimagine out"
    )
    assert off.returncode == 0, off.output
    assert line(off, "models") == (
        "[ok]  models: the key may use wan2.5-i2i-preview (edits); text-to-image is off "
        "(WAN_TEXT_TO_IMAGE=false), not checked"
    )


async def test_models_are_not_checked_with_a_refused_key(
    discord_fake: FakeDiscord, tmp_path: Path
) -> None:
    async with Emulator(EmulatorConfig(api_keys={"sk-other"})) as emu:
        result = await check(discord_fake, emu, tmp_path)
    assert result.returncode == 1
    assert line(result, "dashscope key").startswith("[FIX]")
    assert line(result, "models") == "[--]  models: unknown until the DashScope key works"


async def test_check_says_who_may_use_the_bot_in_dms(
    discord_fake: FakeDiscord, wan: Emulator, tmp_path: Path
) -> None:
    """With an allowlist, DMs serve members of the allowed servers only, and `check` says so; the
    owner's WAN_DM_ANYONE=true is reported with what it lets strangers spend."""
    result = await check(discord_fake, wan, tmp_path, WAN_ALLOWED_GUILDS="123,456")
    dms = line(result, "DMs")
    assert dms.startswith("[ok]") and "members of the 2 allowed server(s) only" in dms
    result = await check(
        discord_fake, wan, tmp_path, WAN_ALLOWED_GUILDS="123", WAN_DM_ANYONE="true"
    )
    dms = line(result, "DMs")
    assert dms.startswith("[!!]") and "can spend the bot-wide cap" in dms
    result = await check(discord_fake, wan, tmp_path, WAN_DM_DAILY_LIMIT="0")
    assert line(result, "DMs") == "[ok]  DMs: off (WAN_DM_DAILY_LIMIT=0)"
