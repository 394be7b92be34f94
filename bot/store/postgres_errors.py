"""What a PostgreSQL failure means for the person running the bot, in one line without secrets.

Messages name the database by host, port and name only (`Target`), never by its URL, and any text
that comes from the server or the driver is scrubbed of the password before it is shown.
"""

from __future__ import annotations

import asyncio

import asyncpg

from bot.store.errors import StoreError
from bot.store.urls import Target

# Errors that are our own mistakes (a bad id, a broken constraint), not the database's trouble:
# they go up as they are, as sqlite's IntegrityError does.
OWN_MISTAKES = (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError)


def describe(err: BaseException, target: Target, busy_timeout: float) -> StoreError:
    """One line saying what is wrong with the database and what to do about it."""
    detail = target.scrub(str(err) or type(err).__name__)
    if isinstance(
        err, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError
    ):
        return StoreError(
            f"The {target} refused the login of user {target.user or '(default)'} ({detail}). "
            "Check the user and password in DATABASE_URL."
        )
    if isinstance(err, asyncpg.InvalidCatalogNameError):
        return StoreError(
            f"The {target} does not exist. Create it (createdb {target.database}) or fix "
            "DATABASE_URL."
        )
    if isinstance(err, asyncpg.InsufficientPrivilegeError):
        return StoreError(
            f"User {target.user or '(default)'} may not change the {target} ({detail}). Make the "
            "user the database's owner, or grant it CREATE on the schema."
        )
    if isinstance(err, asyncpg.LockNotAvailableError):
        return StoreError(
            f"The {target} kept a row locked for more than {busy_timeout:g} s (another bot "
            "process stuck in a transaction?). Try again, or look at pg_stat_activity."
        )
    if isinstance(err, asyncpg.TooManyConnectionsError):
        return StoreError(
            f"The {target} has no connection left ({detail}). Raise max_connections or run "
            "fewer bot processes."
        )
    if isinstance(err, asyncpg.ReadOnlySQLTransactionError):
        return StoreError(
            f"The {target} is read-only (a standby?). Point DATABASE_URL at the primary."
        )
    if isinstance(err, asyncpg.DiskFullError):
        return StoreError(f"The disk holding the {target} is full.")
    if isinstance(err, asyncpg.CannotConnectNowError):
        return StoreError(f"The {target} is starting up or shutting down; try again shortly.")
    if isinstance(err, TimeoutError | asyncio.TimeoutError):
        return StoreError(f"The {target} did not answer in time. Is the server up and reachable?")
    if isinstance(
        err,
        OSError | asyncpg.PostgresConnectionError | asyncpg.InterfaceError,
    ):
        return StoreError(
            f"Cannot reach the {target} ({detail}). Is the server running, and are the host "
            "and port in DATABASE_URL right?"
        )
    return StoreError(f"Database error on the {target}: {detail}.")
