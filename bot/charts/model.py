"""What a usage chart shows, before any drawing: panels of daily bars stacked by outcome, each with
the daily cap that bounds it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from bot.i18n import Text, _
from bot.reports import REASON_NAMES
from bot.store import UsageReport
from bot.store.models import REFUSAL_REASONS

Colour = tuple[int, int, int]

DELIVERED = "delivered"
UNDELIVERED = "undelivered"


@dataclass(frozen=True)
class Outcome:
    """One stacked series: its key in `Bar.counts`, its legend text and its colour."""

    key: str
    label: Text
    colour: Colour


# Bottom to top: what reached members, what Wan billed that never did, then what the limits
# refused (asked for, never made). Colours are told apart without relying on red against green
# alone: each also differs in lightness. None is a grey, the colour of the chart's own words.
_REFUSAL_COLOURS: dict[str, Colour] = {
    "daily_limit": (242, 170, 0),
    "server_cap": (126, 87, 194),
    "global_cap": (30, 115, 232),
    "blocked": (121, 85, 72),
    "paused": (180, 168, 120),
    "dm_off": (0, 160, 176),
}
UNKNOWN_REFUSAL: Colour = (205, 150, 120)

OUTCOMES: tuple[Outcome, ...] = (
    Outcome(DELIVERED, _("Delivered"), (46, 160, 67)),
    Outcome(UNDELIVERED, _("Billed, not delivered"), (200, 40, 40)),
    *(
        Outcome(reason, _("Refused: {reason}", reason=_(REASON_NAMES[reason])), colour)
        for reason, colour in _REFUSAL_COLOURS.items()
    ),
)
assert [o.key for o in OUTCOMES[2:]] == list(REFUSAL_REASONS)


def outcome(key: str) -> Outcome:
    """The series for `key`; a refusal reason this code does not know yet still gets one."""
    for known in OUTCOMES:
        if known.key == key:
            return known
    return Outcome(key, _("Refused: {reason}", reason=key), UNKNOWN_REFUSAL)


@dataclass(frozen=True)
class Bar:
    """One UTC day: images per outcome key."""

    day: date
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class Panel:
    """One scope's days (or the whole bot's), and the daily cap in force for it (None: no cap)."""

    title: Text | str
    bars: tuple[Bar, ...]
    cap: int | None = None

    @property
    def empty(self) -> bool:
        return all(bar.total == 0 for bar in self.bars)


@dataclass(frozen=True)
class UsageChart:
    """A chart: its title, the main panel, then smaller ones (the owner's busiest servers)."""

    title: Text | str
    panels: tuple[Panel, ...]
    today: date

    def outcomes(self) -> list[Outcome]:
        """The series in stacking order: delivered and undelivered always, refusals when any
        panel has some (an empty legend entry would only be noise)."""
        seen = {
            key for panel in self.panels for bar in panel.bars for key, n in bar.counts.items() if n
        }
        keys = [DELIVERED, UNDELIVERED]
        keys += [o.key for o in OUTCOMES[2:] if o.key in seen]
        keys += sorted(seen - set(keys))
        return [outcome(key) for key in keys]


def bars_of(report: UsageReport) -> tuple[Bar, ...]:
    """A report's days as bars. Delivered: the images charged to members (a member pays only for
    what reached them). Billed, not delivered: what Wan billed that day beyond that."""
    bars = []
    for day in report.days:
        counts = {DELIVERED: day.charged, UNDELIVERED: day.undelivered}
        counts.update({reason: n for reason, n in day.refused.items() if n})
        bars.append(Bar(day.day, counts))
    return tuple(bars)
