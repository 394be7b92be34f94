"""What the Edit with Wan menu, the Edit button and reply edits share: the edit modal and picking images.

The modal only collects text; whatever it starts goes through `cogs.intake.requests.start_job` like /wanedit.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import discord

from bot.i18n import DEFAULT_LANGUAGE, N_, _, text_of, translate
from cogs.intake.requests import MAX_NEGATIVE, MAX_PROMPT, MAX_SEED, EditOptions, RequestRejected
from cogs.utils.click_guard import first_click
from cogs.utils.privately import tell

if TYPE_CHECKING:
    from cogs.wanbot import WanBot

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".svg")
MODAL_TIMEOUT = 15 * 60  # an unsent modal is forgotten after this (it holds only the target)

OnOptions = Callable[[discord.Interaction["WanBot"], EditOptions], Awaitable[object]]


def is_image(attachment: discord.Attachment) -> bool:
    """Whether an attachment is meant as a picture (GIF and SVG too: the checks then say why not)."""
    ctype = (attachment.content_type or "").lower()
    return ctype.startswith("image/") or attachment.filename.lower().endswith(IMAGE_SUFFIXES)


def image_attachments(message: discord.Message) -> list[discord.Attachment]:
    """The message's image attachments, in order."""
    return [a for a in message.attachments if is_image(a)]


def parse_count(text: str | None) -> int:
    """The modal's count field: empty means 1; otherwise a whole number 1-4."""
    text = (text or "").strip()
    if not text:
        return 1
    if not text.isdigit() or not 1 <= int(text) <= 4:
        raise RequestRejected(
            _("“{text}” isn't a valid count: write a number from 1 to 4.", text=text[:20])
        )
    return int(text)


def parse_seed(text: str | None) -> int | None:
    """The modal's seed field: empty means a random seed; otherwise a whole number 0-MAX_SEED."""
    text = (text or "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) > MAX_SEED:
        raise RequestRejected(
            _(
                "“{text}” isn't a valid seed: write a whole number from 0 to {high}, or leave it "
                "empty for a random one.",
                text=text[:20],
                high=MAX_SEED,
            )
        )
    return int(text)


WATERMARK, PROMPT_EXTEND = "watermark", "prompt_extend"


class EditModal(discord.ui.Modal):
    """Prompt (required), negative prompt, count, seed and the on/off options (/wanedit's
    `watermark` and `prompt_extend`); hands `EditOptions` to `on_options`.

    A modal holds five top-level components: four text inputs, then one multi-select (a Label with
    a Select, discord.py 2.6+) for the two switches, so each is a click rather than typed syntax.

    The form is private, so every text on it is in `language`, the member's own (`interaction.locale`):
    the class holds the English texts, marked; each instance shows its own copies translated.
    """

    prompt: discord.ui.TextInput[EditModal] = discord.ui.TextInput(
        label=N_("What to change"),
        custom_id="prompt",
        style=discord.TextStyle.paragraph,
        placeholder=N_("e.g. make the sky stormy (end with --ar 16:9 to change the shape)"),
        max_length=MAX_PROMPT,
    )
    negative_prompt: discord.ui.TextInput[EditModal] = discord.ui.TextInput(
        label=N_("What to avoid (optional)"),
        custom_id="negative_prompt",
        required=False,
        placeholder=N_("e.g. blurry, text"),
        max_length=MAX_NEGATIVE,
    )
    count: discord.ui.TextInput[EditModal] = discord.ui.TextInput(
        label=N_("How many variations (1-4)"),
        custom_id="count",
        required=False,
        default="1",
        max_length=1,
    )
    seed: discord.ui.TextInput[EditModal] = discord.ui.TextInput(
        label=N_("Seed (optional, to reproduce a result)"),
        custom_id="seed",
        required=False,
        placeholder=N_("empty = random"),
        max_length=len(str(MAX_SEED)),
    )
    switches: discord.ui.Label[EditModal] = discord.ui.Label(
        text=N_("Options"),
        component=discord.ui.Select(
            custom_id="options",
            placeholder=N_("None"),
            min_values=0,
            max_values=2,
            required=False,
            options=[
                discord.SelectOption(
                    label=N_("Let Wan rewrite the prompt in more detail"),
                    value=PROMPT_EXTEND,
                    description=N_("On by default; a bit slower"),
                    default=True,
                ),
                discord.SelectOption(
                    label=N_("Add Wan's “AI-generated” watermark"),
                    value=WATERMARK,
                    description=N_("A small mark in the corner"),
                ),
            ],
        ),
    )

    def __init__(
        self,
        title: str,
        on_options: OnOptions,
        *,
        source: str,
        language: str = DEFAULT_LANGUAGE,
        parent_job_id: int | None = None,
        parent_index: int | None = None,
    ) -> None:
        super().__init__(title=title[:45], timeout=MODAL_TIMEOUT)
        self._translate(language)
        self.on_options = on_options
        self.source = source
        self.parent_job_id = parent_job_id
        self.parent_index = parent_index

    def _translate(self, language: str) -> None:
        """Show this instance's fields in `language` (discord.py gave it copies of the class's)."""

        def t(text: str | None) -> str | None:
            return translate(language, text) if text else text

        for field in (self.prompt, self.negative_prompt, self.count, self.seed):
            # discord.py 2.6+ deprecates a TextInput's own label in favour of a wrapping Label,
            # which this form does not use yet (the label still works); translating it is no new
            # use. discord.py forces its warning on, so it is recorded here and dropped.
            with warnings.catch_warnings(record=True):
                field.label = t(field.label) or ""
            field.placeholder = t(field.placeholder)
        self.switches.text = t(self.switches.text) or ""
        select = self.switches.component
        if isinstance(select, discord.ui.Select):
            select.placeholder = t(select.placeholder)
            for option in select.options:
                option.label = t(option.label) or option.label
                option.description = t(option.description)

    async def on_submit(self, interaction: discord.Interaction[WanBot]) -> None:  # type: ignore[override]
        # A double click on Submit sends the form twice, both dispatched to this one modal.
        async with first_click(interaction, f"form:{self.custom_id}") as first:
            if first:
                await self._submit(interaction)

    async def _submit(self, interaction: discord.Interaction[WanBot]) -> None:
        try:
            count = parse_count(self.count.value)
            seed = parse_seed(self.seed.value)
        except RequestRejected as err:
            await tell(interaction, _("{reason} Nothing was charged.", reason=text_of(err)))
            return
        select = self.switches.component
        switches = set(select.values) if isinstance(select, discord.ui.Select) else set()
        options = EditOptions(
            prompt=self.prompt.value,
            count=count,
            negative_prompt=self.negative_prompt.value or None,
            seed=seed,
            watermark=WATERMARK in switches,
            prompt_extend=PROMPT_EXTEND in switches,
            source=self.source,
            parent_job_id=self.parent_job_id,
            parent_index=self.parent_index,
        )
        await self.on_options(interaction, options)

    async def on_error(  # type: ignore[override]
        self, interaction: discord.Interaction[WanBot], error: Exception, /
    ) -> None:
        log.error("error in the edit modal (ref %s)", interaction.id, exc_info=error)
        job_id = interaction.extras.get("job_id")
        if job_id:
            text = _("Something went wrong on our side (ref {ref}).", ref=interaction.id)
        else:
            text = _(
                "Something went wrong on our side (ref {ref}). Nothing was charged.",
                ref=interaction.id,
            )
        # Once a job exists, the public message is its progress message: keep it.
        await tell(interaction, text, keep_original=bool(job_id))


def first_images(
    groups: Sequence[tuple[discord.Message, Sequence[discord.Attachment]]], limit: int = 3
) -> tuple[list[discord.Attachment], list[discord.Message]]:
    """Up to `limit` attachments taken group by group, with the message each came from."""
    attachments: list[discord.Attachment] = []
    sources: list[discord.Message] = []
    for message, found in groups:
        for attachment in found:
            if len(attachments) == limit:
                return attachments, sources
            attachments.append(attachment)
            sources.append(message)
    return attachments, sources
