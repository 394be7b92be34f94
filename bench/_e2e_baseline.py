"""The floor for bench/e2e.py: N edits through a bare `WanClient`, no Discord, no store, no queue.

Run as a subprocess by e2e.py (so its memory and CPU are counted apart, like the bot's):

    DASHSCOPE_API_KEY=... python bench/_e2e_baseline.py BASE_URL --jobs 50 --concurrency 5 \
        --qps 10 IMAGE1 IMAGE2 IMAGE3

At most `concurrency` tasks are in flight (the bot's WAN_MAX_CONCURRENT_TASKS); each one is created
with the three images (base64, as the bot sends them), waited on with `WanClient.wait` and its results
fetched with `download_results`. Prints one JSON object: {"done": {task_id: unix time the last result
byte arrived}, "failed": [...]}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.wan import EditRequest, InputImage, PollConfig, WanClient, WanError

MAX_SEED = 2_147_483_647


async def run(args: argparse.Namespace, images: list[InputImage]) -> dict[str, object]:
    done: dict[str, float] = {}
    failed: list[str] = []
    gate = asyncio.Semaphore(args.concurrency)

    async def one(index: int, client: WanClient) -> None:
        request = EditRequest(
            prompt=f"bench job {index}: turn it into a watercolour",
            images=images,
            seed=random.randint(0, MAX_SEED - 3),
            prompt_extend=True,
            watermark=False,
        )
        async with gate:
            try:
                created = await client.create_task(request)
                result = await client.wait(created.task_id, timeout=300)
                files = await client.download_results(result)
            except WanError as err:
                failed.append(f"job {index}: {err.code}")
                return
            if not files:
                failed.append(f"job {index}: {result.status}")
                return
            done[created.task_id] = time.time()

    shortest, longest = (float(x) for x in args.task_seconds.split("-"))
    async with WanClient(
        os.environ["DASHSCOPE_API_KEY"],
        args.base_url,
        query_qps=args.qps,
        poll_config=PollConfig.for_tasks(shortest, longest),
    ) as client:
        await asyncio.gather(*(one(i, client) for i in range(args.jobs)))
    return {"done": done, "failed": failed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("base_url")
    parser.add_argument("images", nargs=3)
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=5)
    parser.add_argument("--qps", type=float, default=10.0)
    parser.add_argument("--task-seconds", default="30-120", help="as WAN_TASK_SECONDS")
    args = parser.parse_args()
    images = [
        InputImage(data=Path(p).read_bytes(), mime="image/png", filename=Path(p).name)
        for p in args.images
    ]
    out = asyncio.run(run(args, images))
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
