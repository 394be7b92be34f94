"""DATABASE_URL: which engine it names, and what of it is safe to show. A PostgreSQL URL carries a
password, so no message shows it: `Target` keeps the parts fit to show, the password to scrub it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, unquote, urlsplit

from bot.store.errors import StoreError

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
SQLITE_PREFIX = "sqlite:///"


def is_postgres(url: str) -> bool:
    return url.strip().startswith(POSTGRES_SCHEMES)


def sqlite_path(url: str) -> str:
    """The file path in `sqlite:///PATH` (relative: `sqlite:///wanbot.db`; absolute: `sqlite:////x`)."""
    if not url.startswith(SQLITE_PREFIX) or len(url) == len(SQLITE_PREFIX):
        # Never echo the URL: a PostgreSQL one would carry a password.
        scheme = url.split(":", 1)[0] if ":" in url else "no"
        raise StoreError(
            f"DATABASE_URL must look like sqlite:///PATH or "
            f"postgresql://USER:PASSWORD@HOST:PORT/DATABASE (got a {scheme or 'blank'} URL)."
        )
    return url[len(SQLITE_PREFIX) :]


def describe_url(url: str) -> str:
    """The database named by `url`, fit to show: a PostgreSQL URL loses its credentials."""
    url = url.strip()
    return str(Target.parse(url)) if is_postgres(url) else url


@dataclass(frozen=True)
class Target:
    """The parts of a PostgreSQL URL that are safe to show, and the password to scrub."""

    host: str  # "host:port" as written (maybe several, comma-separated), never the credentials
    database: str
    user: str
    password: str

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        netloc = parts.netloc
        credentials, _, hosts = netloc.rpartition("@")
        user, _, password = credentials.partition(":")
        # libpq also takes the password as a query parameter.
        password = unquote(password) or parse_qs(parts.query).get("password", [""])[0]
        return cls(
            host=hosts or "localhost",
            database=unquote(parts.path.lstrip("/")) or unquote(user) or "postgres",
            user=unquote(user),
            password=password,
        )

    def __str__(self) -> str:
        return f"PostgreSQL database {self.database} on {self.host}"

    def scrub(self, text: str) -> str:
        """`text` without the password (as typed, or URL-encoded) and on one line."""
        for secret in {self.password, quote(self.password, safe="")} - {""}:
            text = text.replace(secret, "***")
        return re.sub(r"\s+", " ", text).strip()
