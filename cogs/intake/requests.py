"""The one path from an interaction to a queued job, shared by /wanedit, /wanimagine, the menu and the
result buttons. An edit brings images; a text-to-image request (`EditOptions.kind` IMAGINE) brings none.

Order matters: cheap checks answer at once (first of all: is the bot allowed in this server at all,
`WAN_ALLOWED_GUILDS`); then the public deferral (within Discord's 3 s); then downloads and real decodes;
only then quota is reserved and the job stored. Every refusal before that point is an ephemeral message
and costs nothing.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import discord

from bot import guild_settings
from bot.aspects import AspectRejected, check_aspect, take_aspect
from bot.i18n import _, text_of
from bot.images import CheckedImage, ImageRejected
from bot.jobs import EDIT, IMAGINE, JobRefused, JobSpec
from bot.store import Job
from bot.wan.models import MAX_NEGATIVE, MAX_PROMPT
from cogs.intake import attachments as inputs
from cogs.intake.dm_access import MembershipUnknown
from cogs.utils.language import (
    JOB_LANGUAGE,
    JOB_MEMBER_LANGUAGE,
    message_language,
    private_language,
    public_language,
)
from cogs.utils.privately import tell
from cogs.utils.quota_words import refused_text

if TYPE_CHECKING:
    from cogs.wanbot import WanBot

log = logging.getLogger(__name__)

MAX_SEED = 2_147_483_647
# Seconds the quota check may take before the deferral (Discord allows 3 s for the first answer).
PRECHECK_TIMEOUT = 1.5
# Quota checks that outlived PRECHECK_TIMEOUT, kept referenced until they finish.
_late_checks: set[asyncio.Future[None]] = set()


NOT_ALLOWED = _(
    "This bot's owner hasn't enabled it in this server, so it makes no images here "
    "(not on the owner's list of servers)."
)


TEXT_TO_IMAGE_OFF = _("Making images from text is turned off on this bot by its owner.")
NO_IMAGES_TO_IMAGINE = _(
    "Imagine makes an image from words alone, so it takes no images: leave them out, or reply "
    "without “imagine” to edit them."
)


class RequestRejected(Exception):
    """Bad input; `str()` is the message for the user."""


DM_MEMBERS_ONLY = _(
    "In DMs this bot serves members of the servers its owner runs it in, and you are not in one "
    "of them."
)
DM_UNCHECKED = _("Discord couldn't tell right now whether you may use the bot in DMs; try again.")
# Seconds the DM membership lookup may take before the deferral (within Discord's 3 s).
DM_CHECK_TIMEOUT = 1.0


async def refuse_unless_allowed(bot: WanBot, guild_id: int | None, user_id: int) -> None:
    """Raise `RequestRejected` in a server not on WAN_ALLOWED_GUILDS, and in a DM from someone who
    is no member of an allowed server (unless WAN_DM_ANYONE). Every way of asking for an edit
    (slash command, menu, buttons, reply) passes through here before anything is spent."""
    settings = bot.settings
    if not settings.allowed_here(guild_id):
        log.debug("request in server %s refused: not in WAN_ALLOWED_GUILDS", guild_id)
        raise RequestRejected(NOT_ALLOWED)
    if guild_id is None and settings.dm_needs_membership:
        try:
            async with asyncio.timeout(DM_CHECK_TIMEOUT):
                member = await bot.dm_members.allowed(user_id)
        except (MembershipUnknown, TimeoutError, discord.HTTPException) as err:
            log.warning("DM from user %d: membership unknown (%s)", user_id, err)
            raise RequestRejected(DM_UNCHECKED) from None
        if not member:
            log.info("DM from user %d refused: no member of an allowed server", user_id)
            raise RequestRejected(DM_MEMBERS_ONLY)


def refuse_unless_offered(bot: WanBot, options: EditOptions) -> None:
    """Raise `RequestRejected` for a text-to-image request while WAN_TEXT_TO_IMAGE is off (a
    Reroll of an older result, say: /wanimagine itself is then not registered)."""
    if options.kind == IMAGINE and not bot.settings.text_to_image:
        raise RequestRejected(TEXT_TO_IMAGE_OFF)


def member_roles(user: discord.abc.User) -> tuple[int, ...]:
    """The member's role ids in this server (role limits), none in DMs."""
    if isinstance(user, discord.Member):
        return tuple(role.id for role in user.roles)
    return ()


@dataclass
class EditOptions:
    """What the user asked for, beyond the images."""

    prompt: str
    count: int = 1
    negative_prompt: str | None = None
    seed: int | None = None
    watermark: bool = False
    prompt_extend: bool = True
    aspect: str | None = None  # None: the input's shape
    spoiler: bool | None = None  # None: the server's default (/wansettings)
    source: str = "slash"
    parent_job_id: int | None = None
    parent_index: int | None = None
    extra: dict = field(default_factory=dict)
    kind: str = EDIT  # IMAGINE: made from the prompt alone, with no images


def check_options(options: EditOptions) -> EditOptions:
    """Validate the text and numbers; return them normalised (stripped, a seed chosen, a
    trailing `--ar W:H` taken off the prompt into `aspect`)."""
    try:
        prompt, asked = take_aspect(options.prompt.strip())
        if options.aspect is not None:
            check_aspect(options.aspect)  # Discord offers only these; a raw request may not
    except AspectRejected as err:
        raise RequestRejected(text_of(err)) from None
    if asked is not None and options.aspect is not None and asked != options.aspect:
        raise RequestRejected(
            _(
                "Two aspect ratios were given ({aspect} and --ar {asked}); pick one.",
                aspect=options.aspect,
                asked=asked,
            )
        )
    options.aspect = options.aspect or asked
    if not prompt and options.kind == IMAGINE:
        raise RequestRejected(
            _("Write a prompt saying what to make, e.g. “a lighthouse on a cliff at dusk”.")
        )
    if not prompt:
        raise RequestRejected(
            _("Write a prompt saying what to change, e.g. “make the sky stormy”.")
        )
    if len(prompt) > MAX_PROMPT:
        raise RequestRejected(
            _(
                "The prompt is {length} characters; the limit is {limit}.",
                length=len(prompt),
                limit=MAX_PROMPT,
            )
        )
    negative = (options.negative_prompt or "").strip() or None
    if negative is not None and len(negative) > MAX_NEGATIVE:
        raise RequestRejected(
            _(
                "The negative prompt is {length} characters; the limit is {limit}.",
                length=len(negative),
                limit=MAX_NEGATIVE,
            )
        )
    if not 1 <= options.count <= 4:
        raise RequestRejected(_("`count` must be 1 to 4."))
    seed = options.seed
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise RequestRejected(_("`seed` must be 0 to {high}.", high=MAX_SEED))
    if seed is None:
        # Chosen here rather than by Wan, so every result can show the seed that made it.
        seed = random.randint(0, MAX_SEED - 3)
    options.prompt, options.negative_prompt, options.seed = prompt, negative, seed
    return options


async def resolve_spoiler(bot: WanBot, options: EditOptions, guild_id: int | None) -> None:
    """A request that doesn't say gets the server's default; Reroll and Edit pass the job's own."""
    if options.spoiler is None:
        options.spoiler = (await guild_settings.load(bot.store, guild_id)).spoiler


def not_charged(error: Exception) -> str:
    """A refusal of bad input, for the member: the reason and that it cost nothing."""
    return _("{reason} Nothing was charged.", reason=text_of(error))


def scope_of(guild_id: int | None) -> int:
    """Quota scope: the server, or 0 for DMs (their own scope)."""
    return guild_id or 0


@dataclass(frozen=True)
class Place:
    """Where a request was made: the message its job reports on, and the token if it was an interaction."""

    guild_id: int | None
    channel_id: int
    thread_id: int | None
    user_id: int
    message_id: int
    upload_limit: int | None = None
    application_id: int | None = None
    interaction_token: str | None = field(default=None, repr=False)  # a secret
    token_expires_at: datetime | None = None
    language: str = "en"  # the server's: the job's public messages
    member_language: str = "en"  # the requester's own: what is told to them alone
    roles: tuple[int, ...] = ()


def job_spec(options: EditOptions, place: Place, described: list[dict]) -> JobSpec:
    """The runner's view of a checked request, whichever way it arrived."""
    extra = dict(options.extra)
    extra["upload_limit"] = place.upload_limit
    extra["spoiler"] = bool(options.spoiler)
    # Kept with the job, so what it says after a restart or an expired token is in the same language.
    extra[JOB_LANGUAGE] = place.language
    extra[JOB_MEMBER_LANGUAGE] = place.member_language
    return JobSpec(
        scope=scope_of(place.guild_id),
        guild_id=place.guild_id,
        channel_id=place.channel_id,
        thread_id=place.thread_id,
        user_id=place.user_id,
        source=options.source,
        prompt=options.prompt,
        count=options.count,
        negative_prompt=options.negative_prompt,
        seed=options.seed,
        watermark=options.watermark,
        prompt_extend=options.prompt_extend,
        aspect=options.aspect,
        inputs=described,
        message_id=place.message_id,
        application_id=place.application_id,
        interaction_token=place.interaction_token,
        token_expires_at=place.token_expires_at,
        parent_job_id=options.parent_job_id,
        parent_index=options.parent_index,
        extra=extra,
        roles=place.roles,
        kind=options.kind,
    )


async def bounded_precheck(
    bot: WanBot, interaction: discord.Interaction[WanBot], count: int
) -> None:
    """`runner.precheck`, given at most `PRECHECK_TIMEOUT` s: Discord wants an answer within 3 s.

    On a slow (busy) database the request goes on to the deferral and `submit` checks again. The
    late check is left to finish rather than cancelled, since a cancel between its reserve and
    release would leave images held.
    """
    check = asyncio.ensure_future(
        bot.runner.precheck(
            scope_of(interaction.guild_id),
            interaction.user.id,
            count,
            member_roles(interaction.user),
        )
    )
    done, _ = await asyncio.wait({check}, timeout=PRECHECK_TIMEOUT)
    if done:
        check.result()  # raises its refusal
        return
    log.warning(
        "quota check for interaction %s took over %.1f s; deferring, submit checks again",
        interaction.id,
        PRECHECK_TIMEOUT,
    )
    _late_checks.add(check)
    check.add_done_callback(_late_check_done)


def _late_check_done(check: asyncio.Future[None]) -> None:
    _late_checks.discard(check)
    error = None if check.cancelled() else check.exception()
    # A refusal is said by `submit` anyway; anything else is worth a line.
    if error is not None and not isinstance(error, JobRefused):
        log.warning("late quota check failed: %r", error)


async def start_job(
    interaction: discord.Interaction[WanBot],
    options: EditOptions,
    attachments: Sequence[discord.Attachment] = (),
    *,
    source_message: discord.Message | None = None,
    images: list[CheckedImage] | None = None,
    described: list[dict] | None = None,
    loader: Callable[[], Awaitable[tuple[list[CheckedImage], list[dict]]]] | None = None,
) -> int | None:
    """Validate, reserve and queue one job for this interaction; return the job id or None if refused.

    Either `attachments` (downloaded and checked here), or already checked `images` with their
    `described` input rows, or a `loader` returning both (run after the deferral; a button rebuilding
    a stored job's inputs; it raises `ImageRejected` when they are gone) is given. A text-to-image
    request (`options.kind` IMAGINE) gives none of them.
    """
    bot = interaction.client
    from_text = options.kind == IMAGINE
    if from_text and images is None and loader is None:
        images, described = [], []
    try:
        await refuse_unless_allowed(bot, interaction.guild_id, interaction.user.id)
        refuse_unless_offered(bot, options)
        if from_text and attachments:
            raise RequestRejected(NO_IMAGES_TO_IMAGINE)
        check_options(options)
        if images is None and loader is None:
            inputs.precheck(attachments)
        # Quota and the per-user cap answer before the deferral, so their refusal is private.
        await bounded_precheck(bot, interaction, options.count)
    except (RequestRejected, ImageRejected) as err:
        await tell(interaction, not_charged(err))
        return None
    except JobRefused as err:
        await tell(interaction, refused_text(err))
        return None
    if not interaction.response.is_done():
        await interaction.response.defer(thinking=True)
    try:
        if images is None and loader is not None:
            images, described = await loader()
        elif images is None:
            images = await inputs.load(attachments, timeout=bot.settings.download_timeout)
            described = inputs.describe(attachments, images, source_message)
    except ImageRejected as err:
        await tell(interaction, not_charged(err))
        return None
    with bot.runner.holding_inputs() as keep:
        if not keep:
            images = []  # see `holding_inputs`: the job fetches them again at its turn
        await resolve_spoiler(bot, options, interaction.guild_id)
        response = await interaction.original_response()
        in_thread = isinstance(interaction.channel, discord.Thread)
        place = Place(
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id or response.channel.id,
            thread_id=interaction.channel_id if in_thread else None,
            user_id=interaction.user.id,
            message_id=response.id,
            upload_limit=interaction.filesize_limit,
            application_id=interaction.application_id,
            interaction_token=interaction.token,
            token_expires_at=interaction.expires_at,
            language=await public_language(bot.store, interaction),
            member_language=private_language(interaction),
            roles=member_roles(interaction.user),
        )
        try:
            job = await bot.runner.submit(job_spec(options, place, described or []), images)
        except JobRefused as err:
            await tell(interaction, refused_text(err))
            return None
    interaction.extras["job_id"] = job.id
    return job.id


async def start_message_job(
    bot: WanBot,
    message: discord.Message,
    options: EditOptions,
    attachments: Sequence[discord.Attachment],
    sources: Sequence[discord.Message],
) -> Job:
    """The same flow for a plain message (a reply edit, or a mention asking to imagine): checks,
    quota, download, decode, queue.

    `sources[i]` is the message `attachments[i]` came from (a text-to-image request is given the
    message's own images, and refused if there are any). Raises `RequestRejected` or `ImageRejected` (bad
    input) or `JobRefused` (quota, per-user cap), always with nothing spent; the caller words the
    answer. The job reports on `message` (reactions, then a reply).
    """
    guild_id = message.guild.id if message.guild is not None else None
    from_text = options.kind == IMAGINE
    await refuse_unless_allowed(bot, guild_id, message.author.id)
    refuse_unless_offered(bot, options)
    if from_text and attachments:
        raise RequestRejected(NO_IMAGES_TO_IMAGINE)
    check_options(options)
    if not from_text:
        inputs.precheck(attachments)
    roles = member_roles(message.author)
    await bot.runner.precheck(scope_of(guild_id), message.author.id, options.count, roles)
    images = (
        [] if from_text else await inputs.load(attachments, timeout=bot.settings.download_timeout)
    )
    described = [
        row
        for attachment, image, source in zip(attachments, images, sources, strict=True)
        for row in inputs.describe([attachment], [image], source)
    ]
    with bot.runner.holding_inputs() as keep:
        if not keep:
            images = []  # see `holding_inputs`: the job fetches them again at its turn
        await resolve_spoiler(bot, options, guild_id)
        in_thread = isinstance(message.channel, discord.Thread)
        language = await message_language(bot.store, message)
        place = Place(
            guild_id=guild_id,
            channel_id=message.channel.id,
            thread_id=message.channel.id if in_thread else None,
            user_id=message.author.id,
            message_id=message.id,
            upload_limit=message.guild.filesize_limit if message.guild is not None else None,
            language=language,
            member_language=language,
            roles=roles,
        )
        return await bot.runner.submit(job_spec(options, place, described), images)
