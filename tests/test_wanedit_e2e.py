"""/wanedit end to end: the real discord.py bot, the fake Discord, the Wan emulator, a real sqlite file."""

from __future__ import annotations

from tests.harness import World, embed_text, wait_until


async def test_one_image_round_trip(bot_world: World) -> None:
    w = bot_world
    ix = await w.wanedit(w.alice, "make the sky stormy")
    await ix.wait_response()
    assert ix.response_type == 5  # deferred at once
    result = await w.result_message(w.alice)
    files = w.fd.files(result)
    assert len(files) == 1 and files[0][1][:8] == b"\x89PNG\r\n\x1a\n"
    text = embed_text(result)
    assert "make the sky stormy" in text and "Seed" in text
    store = w.bots[0].store

    async def settled() -> bool:
        status = await store.quota_status(w.guild.id, w.alice.id)
        return status.used == 1 and status.held == 0

    await wait_until(settled)
