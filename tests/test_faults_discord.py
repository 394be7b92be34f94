"""Faults on Discord's side, injected in the fake Discord where they happen in life: an attachment
download that never finishes, channels that refuse the bot (403 50013), closed DMs (50007), tokens
that expired; and who may use the bot in DMs when it is kept to some servers."""

from __future__ import annotations

from tests.harness import World, png, wait_until
from tests.promises_support import private_text, usage


async def test_a_stalled_download_delays_only_its_own_request(world: World) -> None:
    """One member's attachment never finishes downloading: another member's request made after it
    is served meanwhile (intake used to take one request at a time, with a 300 s timeout), and the
    first member is told, within WANBOT_DOWNLOAD_TIMEOUT, that the image did not download, with
    nothing charged and no task created."""
    w = world
    await w.start_bot(WANBOT_DOWNLOAD_TIMEOUT="10")
    cdn = w.fd.world.cdn
    stuck = w.fd.add_cdn_file(png(), "stuck.png", "image/png", stalls=True)
    first = await w.wanedit(w.alice, "never arrives", [stuck])
    await wait_until(lambda: cdn.stalled >= 1)
    await w.wanedit(w.bob, "flows past it")
    await w.result_message(w.bob, timeout=8)
    assert not private_text(first)  # still downloading: bob did not wait for it
    await first.wait_for(private_text, timeout=20)
    text = private_text(first)
    assert "`stuck.png`" in text and "did not finish downloading" in text, text
    assert "Nothing was charged" in text
    assert await usage(w, w.alice.id) == (0, 0)
    assert w.emu.created_count == 1
