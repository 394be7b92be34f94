"""Jobs: every column survives a round trip, state changes, finishing settles exactly once."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from bot.config import load_settings
from bot.reports import report_lines
from bot.store import NotFound, Store
from bot.store.driver import as_time
from bot.store.models import Job, JobState
from tests.support.store import (
    START,
    Clock,
    Database,
)

G, U = 111, 501
INPUT = {
    "url": "https://cdn.discordapp.com/attachments/1/2/cat.png",
    "filename": "cat.png",
    "content_type": "image/png",
    "size": 12345,
    "width": 640,
    "height": 480,
    "source_channel_id": 10,
    "source_message_id": 11,
    "attachment_id": 12,
}


async def new_job(store: Store, images: int = 2, **fields: Any) -> Job:
    reservation = await store.reserve(fields.get("scope", G), fields.get("user_id", U), images)
    values: dict[str, Any] = {
        "scope": G,
        "guild_id": G,
        "channel_id": 20,
        "user_id": U,
        "source": "slash",
        "prompt": "make the cat blue",
        "options": {"count": images},
        "state": JobState.QUEUED,
        "reservation_id": reservation.id,
        **fields,
    }
    return await store.create_job(**values)


async def test_every_column_round_trips(store: Store, database: Database) -> None:
    expires = START + timedelta(minutes=15)
    parent = await new_job(store)
    job = await new_job(
        store,
        thread_id=30,
        message_id=40,
        application_id=50,
        interaction_token="aW50ZXJhY3Rpb24.secret",
        token_expires_at=expires,
        negative_prompt="dogs",
        options={"count": 2, "seed": 42, "watermark": False, "prompt_extend": True},
        inputs=[INPUT, {**INPUT, "filename": "b.jpg"}],
        parent_job_id=parent.id,
        parent_index=1,
        extra={"locale": "en-US", "nested": {"a": [1, 2]}},
        source="reroll",
    )
    assert job == await store.get_job(job.id)
    assert (job.thread_id, job.message_id, job.application_id) == (30, 40, 50)
    assert job.interaction_token == "aW50ZXJhY3Rpb24.secret"
    assert job.token_expires_at == expires
    assert job.options["seed"] == 42 and job.inputs[1]["filename"] == "b.jpg"
    assert (job.parent_job_id, job.parent_index, job.source) == (parent.id, 1, "reroll")
    assert job.extra == {"locale": "en-US", "nested": {"a": [1, 2]}}
    assert (job.state, job.task_id, job.generated, job.finished_at) == (
        JobState.QUEUED,
        None,
        None,
        None,
    )
    assert job.created_at == job.updated_at == START
    assert job.result_message_ids == []
    assert "secret" not in repr(job)  # the token can post as the bot
    assert await store.get_job(9999) is None
    assert await database.rows("SELECT count(*) FROM jobs") == [(2,)]


async def test_defaults_are_validating_with_empty_collections(store: Store) -> None:
    job = await store.create_job(scope=0, channel_id=1, user_id=U, source="menu", prompt="x")
    assert (job.state, job.options, job.inputs, job.extra, job.guild_id) == (
        JobState.VALIDATING,
        {},
        [],
        {},
        None,
    )


async def test_create_job_refuses_a_final_state(store: Store) -> None:
    with pytest.raises(ValueError):
        await store.create_job(
            scope=G, channel_id=1, user_id=U, source="slash", prompt="x", state=JobState.DONE
        )


async def test_update_job_changes_fields_and_bumps_updated_at(store: Store, clock: Clock) -> None:
    job = await new_job(store)
    clock.advance(seconds=5)
    updated = await store.update_job(
        job.id, state=JobState.RUNNING, message_id=77, extra={"progress": "50%"}
    )
    assert (updated.state, updated.message_id, updated.extra) == (
        JobState.RUNNING,
        77,
        {"progress": "50%"},
    )
    assert updated.updated_at == clock.now and updated.created_at == START
    assert await store.get_job(job.id) == updated


@pytest.mark.parametrize(
    "fields",
    [
        {"state": JobState.DONE},
        {"state": "cancelled"},
        {"id": 5},
        {"created_at": START},
        {"no_such_column": 1},
        {"options": None},
        {"token_expires_at": datetime(2025, 1, 1)},  # naive
    ],
)
async def test_update_job_rejects(store: Store, fields: dict[str, Any]) -> None:
    job = await new_job(store)
    with pytest.raises(ValueError):
        await store.update_job(job.id, **fields)
    assert await store.get_job(job.id) == job


async def test_unknown_job_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="no job 404"):
        await store.update_job(404, state=JobState.RUNNING)
    with pytest.raises(NotFound, match="no job 404"):
        await store.set_task_id(404, "t")
    with pytest.raises(NotFound, match="no job 404"):
        await store.finish_job(404, JobState.DONE)


async def test_a_job_that_made_nothing_releases_its_hold_and_one_that_made_some_settles(
    store: Store, database: Database, clock: Clock
) -> None:
    """Promise: a reservation is closed as what happened: "released" when nothing was generated
    (the owner's reports count it as never spent), "settled" with the images charged otherwise,
    and when it was closed: when the job ended."""
    empty = await new_job(store, images=2)
    made = await new_job(store, images=2)
    clock.advance(minutes=3)
    assert await store.finish_job(empty.id, JobState.DONE, generated=0)
    assert await store.finish_job(made.id, JobState.DONE, generated=1)
    closed = await database.rows(
        "SELECT id, status, charged, closed_at FROM reservations WHERE id IN (?, ?) ORDER BY id",
        empty.reservation_id,
        made.reservation_id,
    )
    assert [(i, s, c) for i, s, c, _ in closed] == [
        (empty.reservation_id, "released", 0),
        (made.reservation_id, "settled", 1),
    ]
    assert [as_time(at) for *_, at in closed] == [clock.now, clock.now]


async def test_set_task_id_marks_submitted(store: Store, clock: Clock) -> None:
    job = await new_job(store)
    clock.advance(seconds=2)
    await store.set_task_id(job.id, "0385dc79-5ff8-4d82-bcb6-xxxxxx")
    got = await store.get_job(job.id)
    assert got is not None
    assert (got.task_id, got.state, got.submitted_at) == (
        "0385dc79-5ff8-4d82-bcb6-xxxxxx",
        JobState.SUBMITTED,
        clock.now,
    )


async def test_a_task_recorded_without_a_lease_is_set_once_on_an_unfinished_job(
    store: Store,
) -> None:
    """Promise: the task a create made is recorded for its job whoever holds the job (its only
    task), but never over a task id already stored, and never on a job that has ended."""
    job = await new_job(store)
    await store.update_job(job.id, state=JobState.SUBMITTED)
    assert await store.record_task(job.id, "task-made")
    assert not await store.record_task(job.id, "task-other")
    got = await store.get_job(job.id)
    assert got is not None and (got.task_id, got.state) == ("task-made", JobState.SUBMITTED)
    ended = await new_job(store)
    await store.update_job(ended.id, state=JobState.SUBMITTED)
    await store.finish_job(ended.id, JobState.FAILED, error_code="CreateOutcomeUnknown")
    assert not await store.record_task(ended.id, "task-late")
    got = await store.get_job(ended.id)
    assert got is not None and (got.task_id, got.state) == (None, JobState.FAILED)


async def test_finish_settles_the_reservation_once(store: Store) -> None:
    job = await new_job(store, images=4)
    assert await store.finish_job(job.id, JobState.DONE, generated=3, result_message_ids=[900, 901])
    status = await store.quota_status(G, U)
    assert (status.used, status.held) == (3, 0)
    # A second finish (say a resume racing a delivery) changes nothing and charges nothing.
    assert not await store.finish_job(job.id, JobState.FAILED, generated=4, error_code="X")
    got = await store.get_job(job.id)
    assert got is not None
    assert (got.state, got.generated, got.error_code, got.result_message_ids) == (
        JobState.DONE,
        3,
        None,
        [900, 901],
    )
    assert got.finished_at == START
    assert (await store.quota_status(G, U)).used == 3
    assert await store.settle(job.reservation_id, 4) == 0  # type: ignore[arg-type]


async def test_finish_adds_its_extra_to_the_jobs(store: Store) -> None:
    """Where the result went is written by the finish itself: its keys join those already kept."""
    job = await new_job(store, images=1, extra={"upload_limit": 8})
    place = {"result_channel_id": 77}
    assert await store.finish_job(job.id, JobState.DONE, generated=1, extra=place)
    got = await store.get_job(job.id)
    assert got is not None and got.extra == {"upload_limit": 8, "result_channel_id": 77}


async def test_failure_releases_everything(store: Store) -> None:
    job = await new_job(store, images=4)
    assert await store.finish_job(
        job.id, JobState.FAILED, error_code="DataInspectionFailed", error_message="Not allowed."
    )
    status = await store.quota_status(G, U)
    assert (status.used, status.held, status.remaining) == (0, 0, 10)
    got = await store.get_job(job.id)
    assert got is not None
    assert (got.state, got.error_code, got.error_message, got.generated) == (
        JobState.FAILED,
        "DataInspectionFailed",
        "Not allowed.",
        0,
    )


async def test_what_wan_billed_counts_against_the_caps_and_the_member_pays_what_was_delivered(
    store: Store,
) -> None:
    """Promise: a result Wan billed but delivered to no one (or only in part) counts against the
    server's day and the bot-wide day, so the owner's caps bound the bill; the member is charged
    only for what reached them; the reports show the rest as billed but undelivered."""
    nowhere = await new_job(store, images=3)
    await store.update_job(nowhere.id, state=JobState.DELIVERING, billed=3)
    assert await store.finish_job(
        nowhere.id, JobState.FAILED, error_code="Undeliverable", error_message="x", billed=3
    )
    partly = await new_job(store, images=2)
    await store.update_job(partly.id, state=JobState.DELIVERING, billed=2)
    assert await store.finish_job(partly.id, JobState.DONE, generated=1)
    member = await store.quota_status(G, U)
    assert (member.used, member.held) == (1, 0)
    server = await store.server_totals(G)
    assert (server.used, server.held, server.billed, server.undelivered) == (5, 0, 5, 4)
    report = await store.usage_report(None, days=1)
    assert (report.global_used, report.global_held) == (5, 0)
    today = report.today
    assert (today.charged, today.billed, today.undelivered) == (1, 5, 4)
    assert report.servers == [(G, 1, 5)]
    assert report.top_members == [(G, U, 1)]
    settings = load_settings(
        {"DISCORD_TOKEN": "t", "DASHSCOPE_API_KEY": "k", "DASHSCOPE_BASE_URL": "singapore"},
        dotenv_path=None,
    )
    lines = report_lines(report, settings)
    assert lines[1] == "Billed by Wan but delivered to no one today: 4 images"


async def test_finish_without_a_reservation(store: Store) -> None:
    job = await store.create_job(scope=G, channel_id=1, user_id=U, source="slash", prompt="x")
    assert await store.finish_job(job.id, JobState.CANCELLED)
    assert (await store.get_job(job.id)).state == JobState.CANCELLED  # type: ignore[union-attr]


async def test_finish_needs_a_final_state(store: Store) -> None:
    """Promise: an impossible finish is refused with a message naming what was wrong, and touches
    nothing; `billed` may be 0 (Wan billed nothing)."""
    job = await new_job(store)
    with pytest.raises(ValueError, match="finish_job needs a final state, not running"):
        await store.finish_job(job.id, JobState.RUNNING)
    with pytest.raises(ValueError, match=r"^generated must be a whole number from 0 to"):
        await store.finish_job(job.id, JobState.DONE, generated=-1)
    with pytest.raises(ValueError, match=r"^billed must be a whole number from 0 to"):
        await store.finish_job(job.id, JobState.DONE, generated=1, billed=-1)
    assert (await store.get_job(job.id)).state == JobState.QUEUED  # type: ignore[union-attr]
    assert await store.finish_job(job.id, JobState.FAILED, billed=0)
    with pytest.raises(NotFound, match="no reservation 404"):
        await store.settle(404, 1)


async def test_a_finished_job_keeps_its_state(store: Store) -> None:
    job = await new_job(store)
    await store.finish_job(job.id, JobState.CANCELLED)
    late = await store.update_job(job.id, state=JobState.RUNNING, extra={"note": "late"})
    assert (late.state, late.extra) == (JobState.CANCELLED, {"note": "late"})
    await store.set_task_id(job.id, "task-after-cancel")
    got = await store.get_job(job.id)
    assert got is not None
    assert (got.state, got.task_id, got.submitted_at) == (
        JobState.CANCELLED,
        "task-after-cancel",
        None,
    )


async def test_unfinished_jobs_and_active_counts(store: Store) -> None:
    a = await new_job(store, images=1)
    b = await new_job(store, images=1, scope=0, guild_id=None)  # a DM job counts too
    c = await new_job(store, images=1)
    other = await new_job(store, images=1, user_id=777)
    await store.finish_job(b.id, JobState.DONE, generated=1)
    assert [j.id for j in await store.unfinished_jobs()] == [a.id, c.id, other.id]
    assert await store.active_job_count(U) == 2
    await store.update_job(a.id, state=JobState.DELIVERING)
    assert await store.active_job_count(U) == 2
    await store.finish_job(a.id, JobState.DONE, generated=1)
    await store.finish_job(c.id, JobState.FAILED)
    assert await store.active_job_count(U) == 0
    assert [j.id for j in await store.unfinished_jobs()] == [other.id]


async def test_task_owners_and_uncertain_creates(store: Store) -> None:
    """What reconciling an unanswered create asks (both engines alike): which listed tasks a job
    holds, and which jobs' creates went unanswered in a window (still SUBMITTED without a task id,
    or ended CreateOutcomeUnknown), by the time of their send."""
    sent = START + timedelta(minutes=1)
    owned = await new_job(store, images=1)
    await store.set_task_id(owned.id, "task-owned")
    in_flight = await new_job(store, images=1)
    await store.update_job(in_flight.id, state=JobState.SUBMITTED, submitted_at=sent)
    gave_up = await new_job(store, images=1)
    await store.update_job(gave_up.id, state=JobState.SUBMITTED, submitted_at=sent)
    await store.finish_job(gave_up.id, JobState.FAILED, error_code="CreateOutcomeUnknown")
    refused = await new_job(store, images=1)  # its create was answered: no task was made
    await store.update_job(refused.id, state=JobState.SUBMITTED, submitted_at=sent)
    await store.finish_job(refused.id, JobState.FAILED, error_code="InvalidParameter")
    late = await new_job(store, images=1)
    await store.update_job(
        late.id, state=JobState.SUBMITTED, submitted_at=sent + timedelta(hours=1)
    )
    assert await store.task_owners(["task-owned", "task-free"]) == {"task-owned": owned.id}
    assert await store.task_owners([]) == {}
    window = (sent - timedelta(seconds=5), sent + timedelta(seconds=5))
    found = await store.uncertain_creates(*window)
    assert [j.id for j in found] == [in_flight.id, gave_up.id]
    with pytest.raises(ValueError):
        await store.uncertain_creates(datetime(2026, 1, 1), window[1])


async def test_jobs_for_user_newest_first(store: Store) -> None:
    first = await new_job(store, images=1)
    dm = await new_job(store, images=1, scope=0)
    last = await new_job(store, images=1)
    assert [j.id for j in await store.jobs_for_user(U)] == [last.id, dm.id, first.id]
    assert [j.id for j in await store.jobs_for_user(U, scope=G, limit=1)] == [last.id]
    assert await store.jobs_for_user(12345) == []


async def test_job_for_message(store: Store) -> None:
    job = await new_job(store, message_id=40)
    await store.update_job(job.id, result_message_ids=[901])
    assert (await store.job_for_message(901)).id == job.id  # type: ignore[union-attr]
    assert (await store.job_for_message(40)).id == job.id  # type: ignore[union-attr]
    await store.finish_job(job.id, JobState.DONE, generated=2, result_message_ids=[902, 903])
    assert await store.job_for_message(901) is None  # replaced by the final list
    assert (await store.job_for_message(903)).id == job.id  # type: ignore[union-attr]
    assert await store.job_for_message(5) is None


async def test_foreign_keys_are_enforced(store: Store) -> None:
    with pytest.raises(Exception, match=r"(?i)foreign key"):
        await store.create_job(
            scope=G, channel_id=1, user_id=U, source="slash", prompt="x", reservation_id=12345
        )


async def test_meta(store: Store) -> None:
    assert await store.get_meta("command_tree") is None
    await store.set_meta("command_tree", "abc")
    await store.set_meta("command_tree", "def")
    assert await store.get_meta("command_tree") == "def"


async def test_meta_items_by_prefix(store: Store) -> None:
    """Heartbeats are read by prefix: exactly the keys that start with it, `_` and `%` literal."""
    await store.set_meta("heartbeat:a_1", "1")
    await store.set_meta("heartbeat:b%2", "2")
    await store.set_meta("heartbeat", "not under the prefix")
    await store.set_meta("heartbeaT:x", "other case")
    await store.set_meta("command_tree", "x")
    assert await store.meta_items("heartbeat:") == {"heartbeat:a_1": "1", "heartbeat:b%2": "2"}
    assert await store.meta_items("heartbeat:a_") == {"heartbeat:a_1": "1"}
    assert await store.meta_items("nothing") == {}


async def test_times_are_utc(store: Store, clock: Clock) -> None:
    clock.now = datetime(2025, 11, 25, 4, 0, tzinfo=timezone(timedelta(hours=8)))
    job = await new_job(store)
    assert job.created_at.utcoffset() == timedelta(0)
    assert job.created_at == datetime(2025, 11, 24, 20, 0, tzinfo=UTC)
    assert (await store.quota_status(G, U)).day == date(2025, 11, 24)  # the UTC day, not +08's
