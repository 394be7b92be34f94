"""`python -m bot [run|sync|check [--live]|usage|edit IMAGE... --prompt TEXT|imagine --prompt TEXT|
migrate-db] [--sandbox]`: the launcher."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path, PurePath

from bot.aspects import ASPECTS
from bot.config import ConfigError, Settings, load_settings
from bot.logs import setup_logging
from bot.memory import tune_allocator

log = logging.getLogger("bot")

SANDBOX_KEY = "sk-sandbox"
SANDBOX_STATUS = "Sandbox mode: test results, not made by Wan"
SQLITE_PREFIX = "sqlite:///"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    sandbox = argparse.ArgumentParser(add_help=False)
    sandbox.add_argument(
        "--sandbox",
        action="store_true",
        # Given before or after the command; SUPPRESS keeps a flag before it from being reset.
        default=argparse.SUPPRESS,
        help="use the built-in Wan emulator instead of DashScope: no API key, no cost",
    )
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description="wanbot: edit images with Wan 2.5 on Discord",
        parents=[sandbox],
    )
    commands = parser.add_subparsers(
        dest="command", metavar="{run,sync,check,usage,edit,imagine,migrate-db}"
    )
    commands.add_parser("run", parents=[sandbox], help="run the bot (the default)")
    commands.add_parser("sync", parents=[sandbox], help="force a slash-command sync and exit")
    check = commands.add_parser("check", parents=[sandbox], help="check the setup")
    check.add_argument(
        "--live",
        action="store_true",
        help="is a bot process running on this database, connected, its job runner alive?",
    )
    usage = commands.add_parser(
        "usage",
        parents=[sandbox],
        help="print today's usage and cost (read-only; safe while the bot runs)",
    )
    usage.add_argument(
        "--chart",
        type=Path,
        metavar="PNG",
        help="also write the owner's usage chart (images per day by outcome) to this file",
    )
    usage.add_argument(
        "--days", type=int, default=7, choices=range(1, 91), metavar="1-90", help="default 7"
    )
    usage.add_argument(
        "--language", default="en", help="the chart's language: en (default) or zh-CN"
    )
    edit = commands.add_parser(
        "edit", parents=[sandbox], help="edit images from the terminal, without Discord"
    )
    edit.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="one to three images")
    edit.add_argument("--prompt", required=True, help="what to change")
    edit.add_argument("--count", type=int, default=1, choices=range(1, 5), metavar="1-4")
    edit.add_argument("--seed", type=int, help="reproduce a result")
    edit.add_argument("--negative-prompt", help="what to avoid")
    edit.add_argument("--aspect", choices=ASPECTS, help="the result's shape (default: the input's)")
    imagine = commands.add_parser(
        "imagine",
        parents=[sandbox],
        help="make images from a prompt (text-to-image) into the current folder, without Discord",
    )
    imagine.add_argument("--prompt", required=True, help="what to make")
    imagine.add_argument("--count", type=int, default=1, choices=range(1, 5), metavar="1-4")
    imagine.add_argument("--seed", type=int, help="reproduce a result")
    imagine.add_argument("--negative-prompt", help="what to avoid")
    imagine.add_argument("--aspect", choices=ASPECTS, help="the image's shape (default: 1:1)")
    migrate = commands.add_parser(
        "migrate-db", help="copy a sqlite database into a new, empty PostgreSQL one"
    )
    migrate.add_argument("--from", dest="from_url", required=True, metavar="sqlite:///PATH")
    migrate.add_argument("--to", dest="to_url", required=True, metavar="postgresql://...")
    args = parser.parse_args(argv)
    args.command = args.command or "run"
    args.sandbox = getattr(args, "sandbox", False)
    args.live = getattr(args, "live", False)
    if args.command == "edit" and len(args.images) > 3:
        parser.error("edit takes one to three images")
    return args


def sandbox_database_url(url: str) -> str:
    """The sandbox's own database next to the real one: `sqlite:///wanbot.db` -> `wanbot.sandbox.db`.

    Kept apart so sandbox jobs are never resumed against the real DashScope (nor real jobs against
    the emulator, which would lose their paid results), and sandbox usage never counts today.
    """
    if not url.startswith(SQLITE_PREFIX):
        # A PostgreSQL database is the real bot's: the sandbox keeps its own file here instead.
        return SQLITE_PREFIX + "wanbot.sandbox.db"
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
    from cogs import launcher

    if not sandbox:
        return await launcher.run(settings, sandbox=False, sync_only=sync_only)
    async with sandboxed(settings) as sandbox_settings:
        log.warning(
            "SANDBOX MODE: results come from the local Wan emulator at %s, not from Wan; "
            "nothing is billed. Sandbox jobs and quotas are kept in %s.",
            sandbox_settings.dashscope_base_url,
            sandbox_settings.database_url,
        )
        # Members see it too: in the bot's status, and in every result's footer (cogs/surface/delivery.py).
        return await launcher.run(
            sandbox_settings, sandbox=True, sync_only=sync_only, status=SANDBOX_STATUS
        )


async def run_check(settings: Settings, *, sandbox: bool) -> int:
    from cogs.health.check import run_check as check

    if not sandbox:
        return await check(settings)
    async with sandboxed(settings) as sandbox_settings:
        return await check(sandbox_settings, sandbox=True)


async def run_live_check(settings: Settings, *, sandbox: bool) -> int:
    """`check --live`: one line per bot process from the heartbeats in the store; 0 when all are well."""
    import sqlite3

    from bot.health import live_check
    from bot.jobs.outages import store_trouble
    from bot.store import StoreError, open_store

    url = sandbox_database_url(settings.database_url) if sandbox else settings.database_url
    try:
        store = await open_store(url, default_daily_limit=settings.default_daily_limit)
    except StoreError as err:
        # The driver's error the store's line was made from, if any: a database that is down or
        # out of reach is an outage the bot lives through, not a setting to fix.
        # (A sqlite file that won't open is a setting to fix: only a server can be away.)
        cause = err.__cause__ or err.__context__
        if (
            cause is not None
            and store_trouble(cause)
            and not isinstance(cause, StoreError | sqlite3.Error)
        ):
            print(
                f"[DEGRADED] database unreachable: {err} Bot processes keep their jobs and "
                "resume them by themselves once it answers."
            )
        else:
            print(f"[FAIL] database: {err}")
        return 1
    try:
        healthy, lines = await live_check(store)
    finally:
        await store.close()
    print("\n".join(lines))
    return 0 if healthy else 1


async def run_usage(
    settings: Settings,
    *,
    sandbox: bool,
    days: int = 7,
    chart: Path | None = None,
    language: str = "en",
) -> int:
    """Print the bot-wide usage report from the database, opened read-only (no lock taken), and
    write the owner's chart when asked."""
    from bot.charts import owner_chart, render_png
    from bot.config import store_limits
    from bot.reports import report_lines
    from bot.store import StoreError, open_store
    from bot.store.urls import describe_url

    url = sandbox_database_url(settings.database_url) if sandbox else settings.database_url
    try:
        store = await open_store(
            url,
            default_daily_limit=settings.default_daily_limit,
            limits=store_limits(settings),
            read_only=True,
        )
    except StoreError as err:
        print(f"wanbot: {err}", file=sys.stderr)
        return 1
    try:
        report = await store.usage_report(None, days=days, top=10)
        png = await render_png(await owner_chart(store, days=days), language) if chart else None
    finally:
        await store.close()
    # Never the URL itself: a PostgreSQL one carries a password.
    print(f"wanbot usage ({describe_url(url)})")
    for line in report_lines(report, settings):
        print(line)
    if chart is not None and png is not None:
        try:
            await asyncio.to_thread(chart.write_bytes, png)
        except OSError as err:
            print(f"wanbot: could not write the chart: {err}", file=sys.stderr)
            return 1
        print(f"Chart of the last {days} day(s) written to {chart}")
    return 0


async def run_terminal_edit(settings: Settings, args: argparse.Namespace) -> int:
    """`edit`: one edit through the job runner, results written next to the first image."""
    from bot.terminal import EditArgs, run_edit

    edit = EditArgs(
        paths=list(args.images),
        prompt=args.prompt,
        count=args.count,
        seed=args.seed,
        negative_prompt=args.negative_prompt,
        aspect=args.aspect,
    )
    if not args.sandbox:
        return await run_edit(settings, edit)
    async with sandboxed(settings) as sandbox_settings:
        return await run_edit(sandbox_settings, edit, sandbox=True)


async def run_terminal_imagine(settings: Settings, args: argparse.Namespace) -> int:
    """`imagine`: one text-to-image job through the job runner, into the current folder."""
    from bot.terminal import ImagineArgs, run_imagine

    if not settings.text_to_image:
        print("wanbot: text-to-image is turned off (WAN_TEXT_TO_IMAGE=false)", file=sys.stderr)
        return 1
    imagine = ImagineArgs(
        prompt=args.prompt,
        count=args.count,
        seed=args.seed,
        negative_prompt=args.negative_prompt,
        aspect=args.aspect,
    )
    if not args.sandbox:
        return await run_imagine(settings, imagine)
    async with sandboxed(settings) as sandbox_settings:
        return await run_imagine(sandbox_settings, imagine, sandbox=True)


async def run_migrate_db(from_url: str, to_url: str) -> int:
    """`migrate-db`: every table of a sqlite database into an empty PostgreSQL one."""
    from bot.store import StoreError
    from bot.store.transfer import migrate_db
    from bot.store.urls import describe_url

    try:
        counts = await migrate_db(from_url, to_url)
    except StoreError as err:
        print(f"wanbot: {err}", file=sys.stderr)
        return 1
    rows = ", ".join(f"{table} {n}" for table, n in counts.items())
    print(f"copied into {describe_url(to_url)}: {rows}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "migrate-db":
        logging.basicConfig(level=logging.WARNING)
        return asyncio.run(run_migrate_db(args.from_url, args.to_url))
    check = args.command == "check"
    # `check` reports a missing token or key as one of its lines instead of stopping here; `usage`
    # only reads the database.
    offline = check or args.command == "usage"
    try:
        settings = load_settings(
            require_discord=args.command in ("run", "sync"),
            require_api_key=not args.sandbox and not offline,
        )
    except ConfigError as err:
        if check:
            from cogs.health.check import report_config_error

            return report_config_error(err)
        print(f"wanbot: {err}", file=sys.stderr)
        return 2
    setup_logging(settings)
    if args.live:
        return asyncio.run(run_live_check(settings, sandbox=args.sandbox))
    if args.command == "edit":
        return asyncio.run(run_terminal_edit(settings, args))
    if args.command == "imagine":
        return asyncio.run(run_terminal_imagine(settings, args))
    if args.command == "usage":
        return asyncio.run(
            run_usage(
                settings,
                sandbox=args.sandbox,
                days=args.days,
                chart=args.chart,
                language=args.language,
            )
        )
    if check:
        return asyncio.run(run_check(settings, sandbox=args.sandbox))
    tune_allocator()  # before the first big buffer: see bot/memory.py
    return asyncio.run(run_bot(settings, sandbox=args.sandbox, sync_only=args.command == "sync"))


if __name__ == "__main__":
    sys.exit(main())
