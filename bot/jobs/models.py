"""What flows through the job runner: a request (`JobSpec`), a refusal, and what the Surface is shown."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bot.aspects import IMAGINE_DEFAULT, size_for
from bot.i18n import Text, _
from bot.store import Job, QuotaRefused
from bot.wan import TaskResult

NOTHING_CHARGED = _("Nothing was charged.")
# Jobs of `python -m bot edit`: that process follows them itself, so a bot never resumes them.
TERMINAL_SOURCE = "terminal"
# How such a job ends when its process is gone (killed, or stopped with Ctrl-C): refunded, since
# nobody else can write its result. Said in the terminal only, which has no catalogue.
TERMINAL_INTERRUPTED = (
    "Interrupted before the result was written. If Wan had started the task it may still be billed."
)
# What a job asks Wan for, kept in its options as "kind": an edit of input images (`wan2.5-i2i-preview`;
# rows without a kind are edits) or an image made from the prompt alone (`wan2.5-t2i-preview`).
EDIT = "edit"
IMAGINE = "imagine"
KINDS = (EDIT, IMAGINE)


def kind_of(job: Job) -> str:
    """The job's kind: `EDIT` or `IMAGINE`."""
    kind = job.options.get("kind")
    return kind if kind in KINDS else EDIT


def from_text(job: Job) -> bool:
    """Whether the job makes an image from its prompt alone (text-to-image)."""
    return kind_of(job) == IMAGINE


def uncharged(reason: str) -> Text:
    """`reason` and that nothing was charged, as one message (a `Text`, see bot.i18n)."""
    return _("{reason} Nothing was charged.", reason=reason)


class JobRefused(Exception):
    """A request refused before anything was spent. `str()` is the message for the user (raised with a
    `Text`: `bot.i18n.text_of` gives it back for rendering in the member's language), except for a
    refusal of the quota (`quota`), whose facts the Discord side words itself."""

    def __init__(self, message: str, reason: str, quota: QuotaRefused | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.quota = quota


@dataclass
class JobSpec:
    """Everything a job needs, gathered by a cog; the runner turns it into a stored job."""

    scope: int
    guild_id: int | None
    channel_id: int
    user_id: int
    source: str
    prompt: str
    count: int = 1
    negative_prompt: str | None = None
    seed: int | None = None
    watermark: bool = False
    prompt_extend: bool = True
    aspect: str | None = None  # one of bot.aspects.ASPECTS; None keeps the input's shape
    inputs: list[dict] = field(default_factory=list)
    thread_id: int | None = None
    message_id: int | None = None
    application_id: int | None = None
    interaction_token: str | None = field(default=None, repr=False)
    token_expires_at: datetime | None = None
    parent_job_id: int | None = None
    parent_index: int | None = None
    extra: dict = field(default_factory=dict)
    # The member's role ids in this server, for role limits (checked in the reservation itself).
    roles: tuple[int, ...] = ()
    kind: str = EDIT  # EDIT, or IMAGINE (no inputs: the image is made from the prompt)

    def options(self) -> dict:
        options = {
            "kind": self.kind,
            "count": self.count,
            "seed": self.seed,
            "watermark": self.watermark,
            "prompt_extend": self.prompt_extend,
        }
        aspect = self.aspect
        if aspect is None and self.kind == IMAGINE:
            aspect = IMAGINE_DEFAULT  # text-to-image always gets a size: square unless asked
        if aspect is not None:
            # Both kept: the ratio to show and reuse (Reroll), the size that was sent.
            options["aspect"] = aspect
            options["size"] = size_for(aspect, from_text=self.kind == IMAGINE)
        return options


@dataclass(frozen=True)
class Progress:
    """What a user should see about a job right now."""

    stage: str  # queued | pending | running | delivering
    position: int | None = None
    started_at: float | None = None  # wall-clock seconds, for a live Discord timestamp
    cancellable: bool = False


@dataclass(frozen=True)
class ResultFile:
    """A downloaded result image, on disk until it is posted (results are never held in memory:
    five deliveries at once of 4 MB PNGs, each copied on its way out, cost ~60 MB of RSS)."""

    path: Path
    size: int
    head: bytes  # its first bytes: the file type and a PNG's dimensions, without reading it all

    def read_bytes(self) -> bytes:
        """The whole file (blocking: a worker thread's, for a re-encode)."""
        return self.path.read_bytes()


@dataclass(frozen=True)
class Delivery:
    """A finished job's files and the facts its result message shows."""

    files: list[ResultFile]
    result: TaskResult
    elapsed: float
    remaining: int | None
    # True when an earlier run may already have posted it (a restart mid-delivery): look first.
    redelivery: bool = False
    # Images Wan made that could not be downloaded (their links failed): said on the result.
    missing: int = 0


@dataclass(frozen=True)
class Posted:
    """Where a result went: its messages, and the channel (or thread) holding them (None: no
    place a link can point to). The runner records them when it ends the job."""

    message_ids: list[int]
    channel_id: int | None = None
