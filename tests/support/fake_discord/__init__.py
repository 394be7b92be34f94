"""A loopback fake Discord (REST API v10 + gateway + CDN) for end-to-end tests with the real
discord.py client. Everything runs on 127.0.0.1 inside the test process (aiohttp).

Connecting a client::

    fd = await FakeDiscord(token="Bot-token-123", application_flags=0).start()
    discord.http.Route.BASE = fd.api_base                        # http://127.0.0.1:PORT/api/v10
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fd.gateway_url)  # ws://127.0.0.1:PORT/gateway
    # GET {api_base}/gateway/bot answers with gateway_url too. Give the client a small
    # guild_ready_timeout (0.05-0.1): discord.py waits that long after the last GUILD_CREATE.
    # client.pointed_at(fd) sets and restores both; client.running(client, fd) starts a client
    # and waits for on_ready; fixtures.py has the fake_discord / discord_endpoints fixtures.

World: ``add_user(name)``, ``add_guild(name, owner=|owner_id=, premium_tier=, upload_limit=,
features=, bot_permissions=, everyone_permissions=, with_bot=True)``, ``add_bot_to_guild``,
``add_text_channel(guild, name)``, ``add_member(guild, user, permissions=, roles=)``,
``add_role``, ``add_thread(channel, name, owner=)``, ``dm_channel(user)``,
``set_bot_permissions(guild, channel=None, allow=, deny=)``, ``add_cdn_file(data, filename,
content_type)`` -> CdnFile (``.url`` is signed and expires), ``advance_cdn_clock(seconds)``.
The application has an owner (``world.owner``), or a team after ``set_team(name, owner,
[(user, role)])``; ``world.bot_public`` is what ``/applications/@me`` says of "Public Bot".
Changes made while the bot is connected are dispatched (GUILD_CREATE, CHANNEL_CREATE,
GUILD_MEMBER_ADD, GUILD_ROLE_*, CHANNEL_UPDATE, THREAD_CREATE).

Users acting: ``await post_user_message(channel, user, content, attachments=, reference=,
mentions=, ping_reply=True)`` (returns the message dict), ``add_user_reaction(message, user,
emoji)``, ``delete_user_message``, ``slash(guild, channel, user, name, options,
subcommand="sub" | "group sub")``, ``context_menu(guild, channel, user, name,
target_message= | target_user=)``, ``click(channel, user, message, custom_id, values=)``,
``submit_modal(channel, user, custom_id, {field_custom_id: value}, message=None)``. Options
are checked against the registered schema (types, required, choices, ranges) like the
Discord client would. The interaction methods return a FakeInteraction: ``wait_response()``,
``wait_for(pred)``, ``wait_original(pred)``, ``response_type``, ``response_data``,
``original``, ``original_history``, ``followups``, ``messages`` (original + follow-ups),
``ephemeral``, ``loading``, ``modal``, ``rejected_callbacks``, ``payload``.

Reading back: ``messages(channel)``, ``message(id)``, ``wait_for_message(channel_id,
predicate, timeout, author=, any_author=, since=mark())`` (existing or future; the bot's by
default; threads under ``channel_id`` count), ``wait_until(pred)``, ``files(message)``,
``reactions(message, user=None)``, ``threads``, ``interactions``, ``commands(guild_id)``,
``command_sync_count``, ``request_log`` [RequestRecord(method, path, status)],
``unknown_routes``, ``identify_payloads`` [{"op": 2, "d": ...}], ``nonce_dedup_count``,
``typing_count``.

Discord's rules it enforces: 401 on a wrong token (REST) / close 4004 (gateway); 4014 if a
privileged intent is not enabled in ``application_flags``; callbacks later than
``interaction_ack_timeout`` (3 s) -> 404/10062, a second ack -> 400/40060; the first
follow-up after a type 5 deferral replaces the placeholder; tokens die
``interaction_token_ttl`` (900 s; a test may set less, and the interaction's id is dated so
discord.py's ``Interaction.expires_at`` agrees) after the interaction -> 401/50027
(``ix.token_alive``, ``ix.dead_token_calls``; ``set_interaction_token_expired(ix)`` kills one at once); uploads over the
guild's per-file limit or the 25 MiB per-request limit -> 413/40005 (``add_guild(upload_limit=,
request_limit=)``); DMs closed by the user (``close_dms(user)``) -> 403/50007; reactions and
message edits per channel over ``rate_limits`` (``DISCORD_RATE_LIMITS``: 1 per 0.25 s, 5 per
5 s; the default is generous) -> 429 with ``retry_after`` and ``X-RateLimit-*`` headers
(``rate_limiter.limited`` lists them); missing permissions -> 403/50013; ``enforce_nonce`` dedup;
a guild past ``max_active_threads`` (1000) active threads -> 400/160006 on thread creation;
invalid command definitions -> 400/50035. Failure injection: ``inject_failure(method,
path_regex, status, body, times=)``, ``gateway_reconnect()`` (op 7),
``gateway_drop(code)``, ``gateway_invalidate_session()``. Holding requests on the test's cue
(a slow Discord or CDN without timers): ``hold(method, path_regex, times=, body_contains=,
after_handling=)`` -> Hold (``await wait_arrived()``, ``release(fail=(status, body))``).
Other Discord behaviours on demand: ``close_dms(user)`` (403/50007), ``delete_channel(channel)``
(its threads and messages too; 404/10003 afterwards), ``forget_nonces()`` (the nonce window has
passed).

Message Content rule: a session without the MESSAGE_CONTENT intent gets content, attachments,
embeds and components blanked, except in DMs, for the bot's own messages and for messages
that mention the bot (a reply that pings the bot counts); a reply's ``referenced_message``
is judged by the same rule on its own; context-menu targets are always complete. REST reads
follow the application flags (GATEWAY_MESSAGE_CONTENT[_LIMITED]).
"""

from .cdn import CdnFile
from .constants import (
    GATEWAY_GUILD_MEMBERS,
    GATEWAY_MESSAGE_CONTENT,
    GATEWAY_MESSAGE_CONTENT_LIMITED,
)
from .interaction_handle import FakeInteraction
from .models import Channel, Guild, Member, Role, User
from .ratelimits import DISCORD_RATE_LIMITS, GENEROUS_RATE_LIMITS, Limit, RateLimits
from .rest_common import RequestRecord
from .server import FakeDiscord

__all__ = [
    "DISCORD_RATE_LIMITS",
    "GATEWAY_GUILD_MEMBERS",
    "GATEWAY_MESSAGE_CONTENT",
    "GATEWAY_MESSAGE_CONTENT_LIMITED",
    "GENEROUS_RATE_LIMITS",
    "CdnFile",
    "Channel",
    "FakeDiscord",
    "FakeInteraction",
    "Guild",
    "Limit",
    "Member",
    "RateLimits",
    "RequestRecord",
    "Role",
    "User",
]
