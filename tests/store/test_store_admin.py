"""Admin operations: each returns (old, new), takes effect, and leaves an audit entry."""

from __future__ import annotations

import pytest

from bot.store import AuditEntry, Store
from tests.support.store import (
    START,
    Clock,
)

G, OTHER = 111, 222
ADMIN, U, V = 9, 501, 502


async def last(store: Store, scope: int = G) -> AuditEntry:
    entries = await store.audit_log(scope, limit=1)
    assert len(entries) == 1
    return entries[0]


async def test_every_admin_operation_is_audited(store: Store, clock: Clock) -> None:
    cases = [
        (store.set_user_limit(G, ADMIN, U, 5), (None, 5), "set_user_limit", U),
        (store.set_user_limit(G, ADMIN, U, None), (5, None), "set_user_limit", U),
        (store.set_server_default(G, ADMIN, 7), (None, 7), "set_server_default", None),
        (store.set_server_cap(G, ADMIN, 40), (None, 40), "set_server_cap", None),
        (store.set_server_cap(G, ADMIN, 0), (40, None), "set_server_cap", None),
        (store.grant_extra(G, ADMIN, U, 3), (0, 3), "grant_extra", U),
        (store.grant_extra(G, ADMIN, U, 2), (3, 5), "grant_extra", U),
        (store.reset_usage(G, ADMIN, U), (0, 0), "reset_usage", U),
        (store.block_user(G, ADMIN, U), (False, True), "block", U),
        (store.unblock_user(G, ADMIN, U), (True, False), "unblock", U),
    ]
    for step, (call, result, action, target) in enumerate(cases):
        clock.advance(minutes=1)
        assert await call == result
        entry = await last(store)
        assert (entry.scope, entry.actor, entry.action, entry.target) == (G, ADMIN, action, target)
        assert (entry.old, entry.new) == result
        assert entry.at == clock.now, step
    entries = await store.audit_log(G, limit=100)
    assert [e.action for e in entries] == [c[2] for c in reversed(cases)]  # newest first
    assert await store.audit_log(OTHER) == []


async def test_audit_log_limit_and_target_filter(store: Store) -> None:
    for n in range(5):
        await store.grant_extra(G, ADMIN, U, 1)
        await store.grant_extra(G, ADMIN, V, n)
    assert len(await store.audit_log(G, limit=3)) == 3
    about_v = await store.audit_log(G, limit=20, target=V)
    assert [e.new for e in about_v] == [10, 6, 3, 1, 0]
    assert {e.target for e in about_v} == {V}


async def test_grant_extra_can_take_back_but_not_below_zero(store: Store) -> None:
    await store.grant_extra(G, ADMIN, U, 3)
    assert await store.grant_extra(G, ADMIN, U, -5) == (3, 0)
    assert (await store.quota_status(G, U)).extra == 0


async def test_reset_usage_keeps_holds_and_the_servers_bill(store: Store) -> None:
    done = await store.reserve(G, U, 6)
    await store.settle(done.id, 6)
    running = await store.reserve(G, U, 3)
    assert await store.reset_usage(G, ADMIN, U) == (6, 0)
    status = await store.quota_status(G, U)
    assert (status.used, status.held, status.remaining) == (0, 3, 7)
    totals = await store.server_totals(G)
    assert (totals.used, totals.held) == (6, 3)  # still what the owner pays for
    await store.settle(running.id, 3)
    assert (await store.quota_status(G, U)).used == 3


async def test_reset_usage_does_not_refund_spent_extra_images(store: Store) -> None:
    await store.set_user_limit(G, ADMIN, U, 1)
    await store.grant_extra(G, ADMIN, U, 2)
    r = await store.reserve(G, U, 3)
    await store.settle(r.id, 3)
    assert await store.reset_usage(G, ADMIN, U) == (3, 0)
    status = await store.quota_status(G, U)
    assert (status.used, status.extra, status.remaining) == (0, 0, 1)


async def test_status_and_totals_report_the_configuration(store: Store) -> None:
    await store.set_server_default(G, ADMIN, 4)
    await store.set_server_cap(G, ADMIN, 30)
    await store.grant_extra(G, ADMIN, V, 2)
    await store.reserve(G, U, 3)
    await store.reserve(G, V, 1)
    status = await store.quota_status(G, V)
    assert (status.limit, status.limit_source, status.extra, status.held) == (4, "server", 2, 1)
    assert (status.remaining, status.blocked, status.day) == (5, False, START.date())
    totals = await store.server_totals(G)
    assert (totals.default_limit, totals.cap, totals.used, totals.held, totals.users) == (
        4,
        30,
        0,
        4,
        2,
    )
    assert totals.cap_remaining == 26


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.set_user_limit(G, ADMIN, U, -1),
        lambda s: s.set_server_default(G, ADMIN, -3),
        lambda s: s.set_server_cap(G, ADMIN, -1),
        lambda s: s.set_user_limit(G, ADMIN, U, 10**12),
        lambda s: s.grant_extra(G, ADMIN, U, True),
    ],
)
async def test_impossible_values_are_rejected_and_not_audited(store: Store, call) -> None:
    with pytest.raises(ValueError):
        await call(store)
    assert await store.audit_log(G) == []
