"""`python -m bot [run|sync|check] [--sandbox]`: the launcher."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import PurePath

from bot.config import ConfigError, Settings, load_settings
from bot.logs import setup_logging
from bot.memory import tune_allocator

log = logging.getLogger("bot")

SANDBOX_KEY = "sk-sandbox"
SANDBOX_STATUS = "Sandbox mode: test results, not made by Wan"
SQLITE_PREFIX = "sqlite:///"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bot", description="wanbot: edit images with Wan 2.5 on Discord"
    )
    parser.add_argument(
        "command",
        nargs="?",
        default="run",
        choices=("run", "sync", "check"),
        help="run the bot (default), force a slash-command sync and exit, or check the setup",
    )
    parser.add_argument(
        "--sandbox",
        action="store_true",
        help="use the built-in Wan emulator instead of DashScope: no API key, no cost",
    )
    return parser.parse_args(argv)


def sandbox_database_url(url: str) -> str:
    """The sandbox's own database next to the real one: `sqlite:///wanbot.db` -> `wanbot.sandbox.db`.

    Kept apart so sandbox jobs are never resumed against the real DashScope (nor real jobs against
    the emulator, which would lose their paid results), and sandbox usage never counts today.
    """
    path = PurePath(url.removeprefix(SQLITE_PREFIX))
    if path.name == ":memory:" or ".sandbox" in path.suffixes:
        return url
    name = f"{path.stem}.sandbox{path.suffix}" if path.suffix else f"{path.name}.sandbox"
    return SQLITE_PREFIX + str(path.with_name(name))


@contextlib.asynccontextmanager
async def sandboxed(settings: Settings) -> AsyncIterator[Settings]:
    """Start the Wan emulator in this process; yield the settings pointed at it."""
    from bot.sandbox import Emulator, EmulatorConfig

    # Realistic-looking timings for people trying the bot (the real service takes 30-120 s);
    # `[slow:SECONDS]` in a prompt changes one task's time.
    emulator = Emulator(
        EmulatorConfig(api_keys={SANDBOX_KEY}, pending_seconds=1.0, running_seconds=6.0)
    )
    await emulator.start()
    try:
        yield replace(
            settings,
            dashscope_api_key=SANDBOX_KEY,
            dashscope_base_url=emulator.base_url,
            database_url=sandbox_database_url(settings.database_url),
        )
    finally:
        await emulator.close()


async def run_bot(settings: Settings, *, sandbox: bool, sync_only: bool) -> int:
    """Start the bot (with the emulator in sandbox mode) and run until closed or signalled."""
    # The Discord side is imported only to run the bot: `check` and the sandbox stay light.
    from cogs.utils import launcher

    if not sandbox:
        return await launcher.run(settings, sandbox=False, sync_only=sync_only)
    async with sandboxed(settings) as sandbox_settings:
        log.warning(
            "SANDBOX MODE: results come from the local Wan emulator at %s, not from Wan; "
            "nothing is billed. Sandbox jobs and quotas are kept in %s.",
            sandbox_settings.dashscope_base_url,
            sandbox_settings.database_url,
        )
        # Members see it too: in the bot's status, and in every result's footer (cogs/utils/delivery.py).
        return await launcher.run(
            sandbox_settings, sandbox=True, sync_only=sync_only, status=SANDBOX_STATUS
        )


async def run_check(settings: Settings, *, sandbox: bool) -> int:
    from cogs.utils.check import run_check as check

    if not sandbox:
        return await check(settings)
    async with sandboxed(settings) as sandbox_settings:
        return await check(sandbox_settings, sandbox=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    check = args.command == "check"
    try:
        # `check` reports a missing token or key as one of its lines instead of stopping here.
        settings = load_settings(
            require_discord=not check, require_api_key=not args.sandbox and not check
        )
    except ConfigError as err:
        if check:
            from cogs.utils.check import report_config_error

            return report_config_error(err)
        print(f"wanbot: {err}", file=sys.stderr)
        return 2
    setup_logging(settings)
    if check:
        return asyncio.run(run_check(settings, sandbox=args.sandbox))
    tune_allocator()  # before the first big buffer: see bot/memory.py
    return asyncio.run(run_bot(settings, sandbox=args.sandbox, sync_only=args.command == "sync"))


if __name__ == "__main__":
    sys.exit(main())
