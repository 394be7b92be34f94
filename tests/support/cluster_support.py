"""Helpers for the several-process tests: servers spread over shards, and what the emulator saw."""

from __future__ import annotations

import asyncio

from bot.sandbox import Emulator
from tests.support.fake_discord import Channel, FakeDiscord, Guild, User

MANAGE_GUILD = 1 << 5


def shard_of(guild_id: int, count: int) -> int:
    return (guild_id >> 22) % count


async def guilds_on_every_shard(
    fd: FakeDiscord, count: int, owner: User, per_shard: int = 1
) -> list[tuple[Guild, Channel]]:
    """Servers (each with a channel) until every shard has `per_shard` of them. Snowflakes carry
    the millisecond, so a server made a moment later may land on another shard."""
    found: dict[int, list[tuple[Guild, Channel]]] = {i: [] for i in range(count)}
    while any(len(v) < per_shard for v in found.values()):
        guild = fd.add_guild(f"server {sum(map(len, found.values()))}", owner=owner)
        fd.add_member(guild, owner, permissions=MANAGE_GUILD)
        shard = shard_of(guild.id, count)
        if len(found[shard]) < per_shard:
            found[shard].append((guild, fd.add_text_channel(guild, "general")))
        await asyncio.sleep(0.001)
    return [pair for shard in range(count) for pair in found[shard]]


def max_in_flight(emu: Emulator) -> int:
    """The most tasks the emulator held at once between their creation and their end."""
    events: list[tuple[float, int]] = []
    for task in emu.tasks.values():
        events.append((task.submitted_at, 1))
        events.append((task.ended_at if task.ended_at is not None else float("inf"), -1))
    events.sort(key=lambda e: (e[0], e[1]))  # an end before a start at the same instant
    most = current = 0
    for _, step in events:
        current += step
        most = max(most, current)
    return most


def max_queries_per_second(emu: Emulator) -> int:
    """The most task queries (GET/cancel/list, the shared limit) that arrived in any one second."""
    times = sorted(t for t, method, path, _ in emu.request_log if "/tasks" in path)
    most = 0
    j = 0
    for i, start in enumerate(times):
        while j < len(times) and times[j] < start + 1.0:
            j += 1
        most = max(most, j - i)
    return most
