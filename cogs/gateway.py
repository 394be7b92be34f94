"""How the bot meets Discord: the intents and permissions it asks for, where REST and the gateway are,
and what the application's settings allow (Message Content), read at start-up."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import discord
import yarl
from discord.ext import commands
from discord.http import Route

log = logging.getLogger(__name__)

# Exactly what the bot uses: post results and threads, react on reply requests, read the message a
# reply points to (for its images), and attach files and embeds.
PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    create_public_threads=True,
    attach_files=True,
    embed_links=True,
    add_reactions=True,
    read_message_history=True,
)
MESSAGE_CONTENT_FLAGS = (1 << 18) | (1 << 19)  # GATEWAY_MESSAGE_CONTENT(_LIMITED)


def base_intents() -> discord.Intents:
    """The fewest intents that work: guilds (cache of channels/threads) and messages (replies that
    mention the bot carry their content without the privileged intent). Message Content is added by
    `read_application` only when the application has it enabled."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.dm_messages = True
    return intents


def use_discord_api_base(base: str | None) -> None:
    """Send every REST call of discord.py to `base` (a REST proxy, or our loopback fake)."""
    if base:
        Route.BASE = base.rstrip("/")


@dataclass(frozen=True)
class Application:
    """What the bot learns about its application at start-up."""

    message_content: bool
    invite_url: str
    owner_ids: frozenset[int]
    public: bool


def owners_of(app: discord.AppInfo, extra: Iterable[int] = ()) -> frozenset[int]:
    """The application's owner, or its team's owner and members who may manage it (admins and
    developers, as discord.py's `is_owner` counts them), plus `extra` (WANBOT_OWNER_IDS)."""
    ids = set(extra)
    if app.team is not None:
        if app.team.owner_id:
            ids.add(app.team.owner_id)
        managing = (discord.TeamMemberRole.admin, discord.TeamMemberRole.developer)
        ids.update(m.id for m in app.team.members if m.role in managing)
    else:
        ids.add(app.owner.id)
    return frozenset(ids)


async def read_application(
    bot: commands.Bot, intents: discord.Intents, extra_owners: Iterable[int] = ()
) -> Application:
    """Whether Message Content is enabled (and ask for it then), the invite URL, the owners."""
    app = await bot.application_info()
    message_content = bool(app.flags.value & MESSAGE_CONTENT_FLAGS)
    # Asked for only when enabled in the portal: asking without it makes Discord refuse to connect.
    intents.message_content = message_content
    invite_url = discord.utils.oauth_url(
        app.id, permissions=PERMISSIONS, scopes=("bot", "applications.commands")
    )
    log.info("invite the bot with: %s", invite_url)
    if message_content:
        log.info("Message Content intent enabled: replies to anyone's images work")
    else:
        log.info(
            "Message Content intent not enabled: reply edits work on the bot's own results; "
            "use the 'Edit with Wan' menu for other images"
        )
    owners = owners_of(app, extra_owners)
    log.info("the bot's owner(s): %s", ", ".join(str(i) for i in sorted(owners)))
    return Application(message_content, invite_url, owners, bool(app.bot_public))


async def point_gateway(bot: commands.Bot, api_base: str | None) -> None:
    """Behind a REST proxy (or our fake), take the gateway from the same place as the REST API.

    discord.py's plain Bot connects to its built-in gateway and never asks.
    """
    if not api_base:
        return
    data = await bot.http.request(Route("GET", "/gateway/bot"))
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(data["url"])
