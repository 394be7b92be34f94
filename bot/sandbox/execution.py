"""Running one emulated task: fetch and check the inputs, apply faults, render the result images."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiohttp

from bot.sandbox.config import MODEL, EmulatorConfig
from bot.sandbox.errors import standard_message
from bot.sandbox.images import ImageCheckError, ImageInfo, inspect_image, render_results
from bot.sandbox.inputs import InputError, load_input
from bot.sandbox.results import ResultStore
from bot.sandbox.tasks import EmulatedTask, Outcome
from bot.sandbox.upload import UploadStore
from bot.sandbox.validation import SEED_MAX

log = logging.getLogger(__name__)


def _check_all(datas: list[bytes | None]) -> list[ImageInfo | None]:
    return [
        inspect_image(data, index) if data is not None else None
        for index, data in enumerate(datas, 1)
    ]


class TaskExecutor:
    """The emulated model. Input failures end the task at once; everything else at its running deadline."""

    def __init__(
        self,
        config: EmulatorConfig,
        uploads: UploadStore,
        results: ResultStore,
        http: Callable[[], aiohttp.ClientSession | None],
        origin: Callable[[], str],
    ) -> None:
        self._cfg = config
        self._uploads = uploads
        self._results = results
        self._http = http
        self._origin = origin

    def publish(self, png: bytes) -> str:
        return self._results.publish(png, self._cfg.result_ttl_seconds, self._origin())

    async def prepare(self, task: EmulatedTask) -> Outcome:
        params = task.params
        http = self._http() if self._cfg.fetch_inputs else None
        datas: list[bytes | None] = []
        for index, image in enumerate(params.images, 1):
            try:
                datas.append(await load_input(image, index, MODEL, http, self._uploads))
            except InputError as exc:
                return Outcome(failure=(exc.code, str(exc)), immediate=True)
        try:
            infos = await asyncio.to_thread(_check_all, datas)
        except ImageCheckError as exc:
            return Outcome(failure=("InvalidParameter", str(exc)), immediate=True)

        fault = task.fault
        if fault.code:
            return Outcome(failure=(fault.code, fault.message or standard_message(fault.code)))
        failed = min(fault.partial_failures, params.n)
        if failed >= params.n:  # no image made it: the task fails as a whole
            return Outcome(
                failure=("InternalError.Timeout", standard_message("InternalError.Timeout"))
            )

        # The result is made from the last input that has bytes (the service follows the last image too).
        base_index = max((i for i, data in enumerate(datas) if data is not None), default=None)
        base = datas[base_index] if base_index is not None else None
        info = infos[base_index] if base_index is not None else None
        seeds = [(params.seed + i) % (SEED_MAX + 1) for i in range(params.n - failed)]
        pngs = await asyncio.to_thread(
            render_results,
            base,
            params.size,
            (info.width, info.height) if info else None,
            self._cfg.result_area,
            seeds,
            params.prompt,
            params.watermark,
            from_text=params.from_text,
        )
        return Outcome(pngs=pngs, failed_images=failed)
