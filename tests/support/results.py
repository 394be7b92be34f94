"""Helpers shared by the reply, menu and result-button tests (no tests here)."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bot.sandbox import Emulator
from tests.support.fake_discord import GATEWAY_MESSAGE_CONTENT, FakeInteraction, User
from tests.support.harness import World, make_world, wait_until

BOT_DONE = "✅"
EPHEMERAL = 1 << 6


async def usage(w: World, user_id: int) -> tuple[int, int]:
    """(used, held) images of `user_id` today in the test server."""
    status = await w.bots[-1].store.quota_status(w.guild.id, user_id)
    return status.used, status.held


async def settled_to(w: World, user_id: int, used: int) -> None:
    async def check() -> bool:
        return await usage(w, user_id) == (used, 0)

    await wait_until(check)


def task_inputs(emu: Emulator, number: int) -> list[bytes]:
    """The input images (bytes) Wan received in the `number`-th task created (1-based)."""
    tasks = sorted(emu.tasks.values(), key=lambda t: t.submitted_mono)
    sent = tasks[number - 1].request["input"]["images"]
    return [base64.b64decode(s.split(",", 1)[1]) for s in sent]


def task_parameters(emu: Emulator, number: int) -> dict[str, Any]:
    tasks = sorted(emu.tasks.values(), key=lambda t: t.submitted_mono)
    return dict(tasks[number - 1].request["parameters"])


def task_prompt(emu: Emulator, number: int) -> str:
    tasks = sorted(emu.tasks.values(), key=lambda t: t.submitted_mono)
    return str(tasks[number - 1].request["input"]["prompt"])


def button_ids(message: dict[str, Any]) -> list[str]:
    """Every button custom id on a message, row by row."""
    return [c["custom_id"] for row in message.get("components", []) for c in row["components"]]


def private_text(ix: FakeInteraction) -> str:
    """What the user was told privately: an ephemeral message response, or follow-ups after an
    ephemeral deferral (the first of which replaces the "thinking…" placeholder)."""
    parts = []
    if ix.ephemeral and ix.response_type == 4 and ix.response_data:
        parts.append(ix.response_data.get("content") or "")
    parts += [(m.get("content") or "") for m in ix.messages if m.get("flags", 0) & EPHEMERAL]
    parts += [(f.get("content") or "") for f in ix.followups if f.get("flags", 0) & EPHEMERAL]
    return "\n".join(dict.fromkeys(p for p in parts if p))


async def told_privately(ix: FakeInteraction) -> str:
    """Wait for a private answer and return its text."""
    await ix.wait_for(private_text)
    return private_text(ix)


async def first_result(
    w: World, user: User, prompt: str = "make it blue", **options: Any
) -> dict[str, Any]:
    """A delivered /wanedit result of `user` (in the job's thread)."""
    since = w.fd.mark()
    await w.wanedit(user, prompt, **options)
    return await w.result_message(user, since=since)


async def reply_answer(w: World, request: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """The bot's message replying to `request` (a result or a short answer)."""

    def replies(m: dict[str, Any]) -> bool:
        ref = m.get("message_reference") or {}
        return ref.get("message_id") == request["id"]

    return await w.fd.wait_for_message(request["channel_id"], replies, timeout)


@contextlib.asynccontextmanager
async def world_with_intent(tmp_path: Path, emulator: Emulator) -> AsyncIterator[World]:
    """A world whose application has the Message Content intent, with a bot connected."""
    w = await make_world(tmp_path, emulator=emulator, application_flags=GATEWAY_MESSAGE_CONTENT)
    try:
        await w.start_bot()
        yield w
    finally:
        await w.close()
        await w.fd.close()
