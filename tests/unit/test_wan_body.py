"""The streamed create body is byte for byte the JSON the plain way would give, without building it."""

from __future__ import annotations

import base64
import json

from bot.wan.body import SLICE, InlineImage, StreamedBody


async def test_streamed_body_equals_plain_json() -> None:
    images = [
        InlineImage("image/png", bytes(range(256)) * (SLICE // 256 + 7)),
        InlineImage("image/jpeg", b"x"),
    ]
    body = {
        "model": "m",
        "input": {"prompt": 'ünïcode "quoted"', "images": [*images, "https://x/y.png"]},
        "parameters": {"n": 1},
    }
    plain = {
        **body,
        "input": {
            **body["input"],
            "images": [f"data:{i.mime};base64,{base64.b64encode(i.data).decode()}" for i in images]
            + ["https://x/y.png"],
        },
    }
    expected = json.dumps(plain, ensure_ascii=False).encode("utf-8")
    streamed = StreamedBody(body)
    chunks = [c async for c in streamed.chunks()]
    assert b"".join(chunks) == expected == streamed.to_bytes()
    assert len(streamed) == len(expected)
    # Never one big piece: the large image goes out in slices.
    assert max(len(c) for c in chunks) <= 4 * SLICE // 3


async def test_a_fresh_iterator_for_every_attempt() -> None:
    streamed = StreamedBody({"images": [InlineImage("image/png", b"abc" * 1000)]})
    first = b"".join([c async for c in streamed.chunks()])
    second = b"".join([c async for c in streamed.chunks()])
    assert first == second and json.loads(first)["images"][0].startswith("data:image/png;base64,")
