"""`python -m bot.sandbox`: run the DashScope emulator standalone until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from bot.sandbox.config import EmulatorConfig
from bot.sandbox.server import Emulator


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bot.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--running-seconds", type=float, default=8.0)
    parser.add_argument("--pending-seconds", type=float, default=1.0)
    parser.add_argument("--max-running", type=int, default=5)
    parser.add_argument(
        "--over-capacity",
        choices=("queue", "refuse"),
        default="queue",
        help="a create beyond --max-running tasks waits PENDING (queue) or gets 429 Throttling",
    )
    parser.add_argument(
        "--api-key", action="append", default=[], help="accepted key (repeatable); default: any"
    )
    parser.add_argument(
        "--result-area", type=int, default=1280 * 1280, help="output pixels when no size is given"
    )
    parser.add_argument(
        "--no-fetch", action="store_true", help="don't download http(s) input images"
    )
    parser.add_argument("--advertised-host", default=None, help="host name to put in result URLs")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


async def _serve(config: EmulatorConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows
            loop.add_signal_handler(sig, stop.set)
    async with Emulator(config) as emu:
        sys.stdout.write(f"DashScope emulator base URL: {emu.base_url}\n")
        sys.stdout.flush()
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = EmulatorConfig(
        api_keys=set(args.api_key),
        host=args.host,
        port=args.port,
        running_seconds=args.running_seconds,
        pending_seconds=args.pending_seconds,
        max_running=args.max_running,
        over_capacity=args.over_capacity,
        result_area=args.result_area,
        fetch_inputs=not args.no_fetch,
        advertised_host=args.advertised_host,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(config))


if __name__ == "__main__":
    main()
