"""A loopback fake Discord (REST API v10 + gateway + CDN) for end-to-end tests with the real
discord.py client. Everything runs on 127.0.0.1 inside the test process (aiohttp).

Connecting a client::

    fd = await FakeDiscord(token="Bot-token-123", application_flags=0).start()
    discord.http.Route.BASE = fd.api_base                      # http://127.0.0.1:PORT/api/v10
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fd.gateway_url)  # ws://127.0.0.1:PORT/gateway
    # (GET {api_base}/gateway/bot also answers with gateway_url.) Use a small
    # guild_ready_timeout (e.g. 0.1) on the client: discord.py waits that long for GUILD_CREATEs.
    # client.pointed_at(fd) / client.running(client, fd) do this and restore it; fixtures.py
    # has pytest fixtures (fake_discord, discord_endpoints) for pytest_plugins.

World: ``add_user(name)``, ``add_guild(name, owner=, premium_tier=, upload_limit=,
features=, bot_permissions=, everyone_permissions=, with_bot=)``, ``add_text_channel(guild,
name)``, ``add_member(guild, user, permissions=, roles=)``, ``add_role``, ``add_thread``,
``dm_channel(user)``, ``set_bot_permissions(guild, channel=None, allow=, deny=)``,
``add_cdn_file(data, filename, content_type)`` -> CdnFile (``.url`` signed, expiring),
``advance_cdn_clock(seconds)``. Changes made while the bot is connected are dispatched
(GUILD_CREATE, CHANNEL_CREATE, GUILD_MEMBER_ADD, GUILD_ROLE_*, CHANNEL_UPDATE, THREAD_CREATE).

Users acting: ``await post_user_message(channel, user, content, attachments=, reference=,
mentions=, ping_reply=True)``, ``add_user_reaction``, ``delete_user_message``,
``slash(guild, channel, user, name, options, subcommand="grp sub")``,
``context_menu(guild, channel, user, name, target_message=|target_user=)``,
``click(channel, user, message, custom_id, values=)``,
``submit_modal(channel, user, custom_id, {field: value}, message=None)``. The interaction
methods return a FakeInteraction: ``wait_response()``, ``wait_for(pred)``,
``wait_original(pred)``, ``response_type``, ``response_data``, ``original``,
``original_history``, ``followups``, ``ephemeral``, ``loading``, ``modal``.

Reading back: ``messages(channel)``, ``message(id)``, ``wait_for_message(channel_id,
predicate, timeout, author=, any_author=, since=mark())``, ``files(message)``,
``reactions(message, user=None)``, ``threads``, ``commands(guild_id)``,
``command_sync_count``, ``request_log`` [(method, path, status)], ``unknown_routes``,
``identify_payloads``, ``nonce_dedup_count``, ``typing_count``.

Failure modes: ``set_interaction_token_expired(ix)`` (401/50027), ``inject_failure(method,
path_regex, status, body, times=)``, ``gateway_reconnect()``, ``gateway_drop(code)``,
``gateway_invalidate_session()``; interaction callbacks later than
``interaction_ack_timeout`` (3 s) get 404/10062; second acks 400/40060; uploads over the
guild's limit 413/40005; missing permissions 403/50013; wrong token 401 (REST), 4004
(gateway); privileged intents not enabled in ``application_flags`` -> 4014.

Message Content rule: a session without the MESSAGE_CONTENT intent gets content,
attachments, embeds and components blanked, except for DMs, the bot's own messages and
messages mentioning the bot; a reply's ``referenced_message`` is judged by the same rule on
its own. REST reads use the application flags (GATEWAY_MESSAGE_CONTENT[_LIMITED]).
"""

from .cdn import CdnFile
from .constants import (
    GATEWAY_GUILD_MEMBERS,
    GATEWAY_MESSAGE_CONTENT,
    GATEWAY_MESSAGE_CONTENT_LIMITED,
)
from .interaction_handle import FakeInteraction
from .models import Channel, Guild, Member, Role, User
from .rest_common import RequestRecord
from .server import FakeDiscord

__all__ = [
    "GATEWAY_GUILD_MEMBERS",
    "GATEWAY_MESSAGE_CONTENT",
    "GATEWAY_MESSAGE_CONTENT_LIMITED",
    "CdnFile",
    "Channel",
    "FakeDiscord",
    "FakeInteraction",
    "Guild",
    "Member",
    "RequestRecord",
    "Role",
    "User",
]
