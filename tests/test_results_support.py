"""Helpers shared by the reply, menu and result-button tests (no tests here)."""

from __future__ import annotations

import base64
from typing import Any

from bot.sandbox import Emulator
from tests.fake_discord import FakeInteraction, User
from tests.harness import World, wait_until

BOT_DONE = "✅"


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
    """What the user was told privately (an ephemeral reply or follow-ups)."""
    parts = []
    if ix.ephemeral and ix.response_data:
        parts.append(ix.response_data.get("content") or "")
    parts += [(f.get("content") or "") for f in ix.followups]
    return "\n".join(parts)


async def told_privately(ix: FakeInteraction) -> str:
    """Wait for a private answer and return its text."""
    await ix.wait_for(lambda i: i.followups or (i.ephemeral and i.response_data))
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
