"""`python -m bot [run|sync|check] [--sandbox]`: the launcher."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace

from bot.config import ConfigError, Settings, load_settings
from bot.logs import setup_logging

log = logging.getLogger("bot")

SANDBOX_KEY = "sk-sandbox"


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


async def run_bot(settings: Settings, *, sandbox: bool, sync_only: bool) -> int:
    """Start the bot (with the emulator in sandbox mode) and run until closed or signalled."""
    from bot.app import WanBot

    emulator = None
    if sandbox:
        from bot.sandbox import Emulator, EmulatorConfig

        emulator = Emulator(
            EmulatorConfig(api_keys={SANDBOX_KEY}, pending_seconds=1.0, running_seconds=6.0)
        )
        await emulator.start()
        settings = replace(
            settings, dashscope_api_key=SANDBOX_KEY, dashscope_base_url=emulator.base_url
        )
        log.warning(
            "SANDBOX MODE: results come from the local Wan emulator at %s; nothing is billed",
            emulator.base_url,
        )

    bot = WanBot(settings, sandbox=sandbox, sync_only=sync_only)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, lambda s=sig: asyncio.ensure_future(_shutdown(bot, s)))
    try:
        async with bot:
            assert settings.discord_token is not None
            if sync_only:
                await bot.login(settings.discord_token)  # setup_hook syncs (forced) during login
                log.info("commands synced")
                return 0
            await bot.start(settings.discord_token)
    except Exception as err:
        # One clear line instead of a traceback for the start-up failures people meet.
        from bot.startup_errors import describe

        text = describe(err)
        if text is None:
            raise
        log.error("%s", text)
        return 1
    finally:
        if emulator is not None:
            await emulator.close()
    return 0


async def _shutdown(bot: object, sig: signal.Signals) -> None:
    log.info("received %s: stopping; jobs in flight resume at the next start", sig.name)
    await bot.close()  # type: ignore[attr-defined]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings(require_api_key=not args.sandbox and args.command != "check")
    except ConfigError as err:
        print(f"wanbot: {err}", file=sys.stderr)
        return 2
    setup_logging(settings)
    if args.command == "check":
        from bot.check import run_check

        return asyncio.run(run_check(settings, sandbox=args.sandbox))
    return asyncio.run(run_bot(settings, sandbox=args.sandbox, sync_only=args.command == "sync"))


if __name__ == "__main__":
    sys.exit(main())
