"""Numeric constants of the Discord API v10 that the fake needs (bits, types, error bodies)."""

from __future__ import annotations

from typing import Any

# Permission bits (https://discord.com/developers/docs/topics/permissions).
CREATE_INSTANT_INVITE = 1 << 0
ADMINISTRATOR = 1 << 3
MANAGE_CHANNELS = 1 << 4
MANAGE_GUILD = 1 << 5
ADD_REACTIONS = 1 << 6
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
MENTION_EVERYONE = 1 << 17
USE_EXTERNAL_EMOJIS = 1 << 18
CHANGE_NICKNAME = 1 << 26
USE_APPLICATION_COMMANDS = 1 << 31
MANAGE_THREADS = 1 << 34
CREATE_PUBLIC_THREADS = 1 << 35
CREATE_PRIVATE_THREADS = 1 << 36
SEND_MESSAGES_IN_THREADS = 1 << 38
ALL_PERMISSIONS = (1 << 51) - 1

# What @everyone gets in a fresh server, roughly (what the Discord client sets up).
DEFAULT_EVERYONE_PERMISSIONS = (
    CREATE_INSTANT_INVITE
    | ADD_REACTIONS
    | VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | USE_EXTERNAL_EMOJIS
    | CHANGE_NICKNAME
    | USE_APPLICATION_COMMANDS
    | CREATE_PUBLIC_THREADS
    | CREATE_PRIVATE_THREADS
    | SEND_MESSAGES_IN_THREADS
)
# What an image bot's invite link usually asks for (its managed role gets these).
DEFAULT_BOT_PERMISSIONS = (
    VIEW_CHANNEL
    | SEND_MESSAGES
    | SEND_MESSAGES_IN_THREADS
    | CREATE_PUBLIC_THREADS
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | ADD_REACTIONS
    | USE_EXTERNAL_EMOJIS
    | USE_APPLICATION_COMMANDS
)

# Gateway intents.
INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_PRESENCES = 1 << 8
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_GUILD_MESSAGE_REACTIONS = 1 << 10
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_DIRECT_MESSAGE_REACTIONS = 1 << 13
INTENT_MESSAGE_CONTENT = 1 << 15
ALL_INTENTS = (1 << 26) - 1

# Application flags saying a privileged intent is switched on in the developer portal.
GATEWAY_PRESENCE = 1 << 12
GATEWAY_PRESENCE_LIMITED = 1 << 13
GATEWAY_GUILD_MEMBERS = 1 << 14
GATEWAY_GUILD_MEMBERS_LIMITED = 1 << 15
GATEWAY_MESSAGE_CONTENT = 1 << 18
GATEWAY_MESSAGE_CONTENT_LIMITED = 1 << 19
APPLICATION_COMMAND_BADGE = 1 << 23

# Privileged intent -> the application flags that allow it.
PRIVILEGED_INTENTS = {
    INTENT_GUILD_MEMBERS: GATEWAY_GUILD_MEMBERS | GATEWAY_GUILD_MEMBERS_LIMITED,
    INTENT_GUILD_PRESENCES: GATEWAY_PRESENCE | GATEWAY_PRESENCE_LIMITED,
    INTENT_MESSAGE_CONTENT: GATEWAY_MESSAGE_CONTENT | GATEWAY_MESSAGE_CONTENT_LIMITED,
}

# Channel types.
GUILD_TEXT = 0
DM = 1
GUILD_CATEGORY = 4
PUBLIC_THREAD = 11
PRIVATE_THREAD = 12
THREAD_TYPES = (10, 11, 12)

# Message types and flags.
MSG_DEFAULT = 0
MSG_THREAD_CREATED = 18
MSG_REPLY = 19
MSG_CHAT_INPUT_COMMAND = 20
MSG_THREAD_STARTER = 21
MSG_CONTEXT_MENU_COMMAND = 23
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7
FLAG_SUPPRESS_EMBEDS = 1 << 2
FLAG_IS_COMPONENTS_V2 = 1 << 15

# Interaction types and callback types.
IX_PING = 1
IX_APPLICATION_COMMAND = 2
IX_MESSAGE_COMPONENT = 3
IX_AUTOCOMPLETE = 4
IX_MODAL_SUBMIT = 5
CB_PONG = 1
CB_CHANNEL_MESSAGE = 4
CB_DEFERRED_CHANNEL_MESSAGE = 5
CB_DEFERRED_UPDATE_MESSAGE = 6
CB_UPDATE_MESSAGE = 7
CB_AUTOCOMPLETE_RESULT = 8
CB_MODAL = 9

# Discord enforces two upload limits (both answered 413 / 40005 "Request entity too large"):
# - per file: "The file upload size limit applies to each file in a request. The default limit
#   is 10 MiB for all users, but may be higher [...] by the server's Boost Tier. The
#   attachment_size_limit value provided when working with interactions is calculated as the
#   maximum of these values." (API Reference, "Uploading Files",
#   https://discord.com/developers/docs/reference#uploading-files). The boosted values are the
#   ones discord.py's Guild.filesize_limit has; DMs get the default.
# - per request: "The maximum request size when sending a message is 25 MiB" (Channel resource,
#   "Create Message", https://discord.com/developers/docs/resources/message#create-message).
#   The docs do not say how boosts change it; since a boosted server does take one file at its
#   own per-file limit, the fake uses the larger of the two (see Guild.request_limit).
UPLOAD_LIMIT_BY_TIER = {
    0: 10 * 1024 * 1024,
    1: 10 * 1024 * 1024,
    2: 50 * 1024 * 1024,
    3: 100 * 1024 * 1024,
}
MAX_REQUEST_SIZE = 25 * 1024 * 1024


def error_body(code: int, message: str, errors: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Discord JSON error body."""
    body: dict[str, Any] = {"message": message, "code": code}
    if errors is not None:
        body["errors"] = errors
    return body


def field_error(path: list[str | int], code: str, message: str) -> dict[str, Any]:
    """The nested ``errors`` object of a 50035 Invalid Form Body for one field."""
    node: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
    for part in reversed(path):
        node = {str(part): node}
    return node
