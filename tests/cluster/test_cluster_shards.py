"""Shards split across processes on one PostgreSQL: each process identifies with its shards, hears
only its servers' events, syncs commands once between them, and a job may be delivered by either."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cogs.wanbot import ShardedWanBot
from tests.support.cluster_support import guilds_on_every_shard, shard_of
from tests.support.harness import World


@pytest.fixture(name="pg_world")
async def pg_world_fixture(world: World, pg_url: str) -> AsyncIterator[World]:
    world.env["DATABASE_URL"] = pg_url
    world.env["WANBOT_SHARD_COUNT"] = "2"
    yield world
    await world.close()  # before the database is dropped


async def test_two_processes_share_two_shards(pg_world: World) -> None:
    """Each process IDENTIFYs with its own shard and sees only that shard's servers; a request in a
    server of either shard is handled by that shard's process alone and delivered once; the
    commands are synced once for both."""
    w = pg_world
    places = await guilds_on_every_shard(w.fd, 2, w.admin)
    members = []
    for index, (guild, _channel) in enumerate(places):
        members.append(w.add_member(f"member{index}", guild=guild))
    bots = [
        await w.start_bot(WANBOT_SHARD_IDS="0"),
        await w.start_bot(WANBOT_SHARD_IDS="1"),
    ]
    assert all(isinstance(b, ShardedWanBot) for b in bots)
    shards = sorted(tuple(p["d"]["shard"]) for p in w.fd.gateway.identify_payloads)
    assert shards == [(0, 2), (1, 2)]
    for shard, bot in enumerate(bots):
        seen = {g.id for g in bot.guilds}
        assert seen and all(shard_of(g, 2) == shard for g in seen)
        assert {g.id for g, _ in places if shard_of(g.id, 2) == shard} <= seen
    syncs = [r for r in w.fd.request_log if r.method == "PUT" and r.path.endswith("/commands")]
    assert len(syncs) == 1
    for member, (guild, channel) in zip(members, places, strict=True):
        await w.wanedit(member, "make it blue", guild=guild, channel=channel)
    for member in members:
        await w.result_message(member, timeout=15)
    for member in members:
        posted = [
            m
            for channel in [*(c for _, c in places), *w.fd.threads]
            for m in w.fd.messages(channel)
            if m.get("attachments") and f"<@{member.id}>" in (m.get("content") or "")
        ]
        assert len(posted) == 1
    assert w.emu.created_count == 2


def test_shard_settings_are_checked() -> None:
    """WANBOT_SHARD_IDS needs WANBOT_SHARD_COUNT and numbers below it; unset means no sharding."""
    from bot.config import ConfigError, load_settings

    base = {"DISCORD_TOKEN": "t" * 30, "DASHSCOPE_API_KEY": "sk-x"}
    plain = load_settings(base, dotenv_path=None)
    assert plain.shard_count is None and plain.shard_ids is None
    both = load_settings(
        {**base, "WANBOT_SHARD_COUNT": "4", "WANBOT_SHARD_IDS": "2, 0"}, dotenv_path=None
    )
    assert both.shard_count == 4 and both.shard_ids == (0, 2)
    for bad in ({"WANBOT_SHARD_IDS": "0"}, {"WANBOT_SHARD_COUNT": "2", "WANBOT_SHARD_IDS": "2"}):
        with pytest.raises(ConfigError, match="WANBOT_SHARD_IDS"):
            load_settings({**base, **bad}, dotenv_path=None)
