"""Discord's permission algorithm: roles, then channel overwrites (threads use their parent)."""

from __future__ import annotations

from .constants import ADMINISTRATOR, ALL_PERMISSIONS
from .models import Channel, Guild, Member


def base_permissions(guild: Guild, member: Member) -> int:
    if member.user.id == guild.owner_id:
        return ALL_PERMISSIONS
    perms = guild.everyone_role.permissions
    for role_id in member.roles:
        role = guild.roles.get(role_id)
        if role is not None:
            perms |= role.permissions
    return ALL_PERMISSIONS if perms & ADMINISTRATOR else perms


def channel_permissions(
    guild: Guild, channel: Channel | None, member: Member, parent: Channel | None = None
) -> int:
    """Permissions of ``member`` in ``channel``; pass the parent for a thread."""
    perms = base_permissions(guild, member)
    if perms & ADMINISTRATOR or channel is None:
        return perms
    source = parent if channel.is_thread and parent is not None else channel
    everyone = source.overwrites.get(guild.id)
    if everyone is not None:
        perms = (perms & ~everyone.deny) | everyone.allow
    allow = deny = 0
    for role_id in member.roles:
        ow = source.overwrites.get(role_id)
        if ow is not None and ow.type == 0:
            allow |= ow.allow
            deny |= ow.deny
    perms = (perms & ~deny) | allow
    own = source.overwrites.get(member.user.id)
    if own is not None and own.type == 1:
        perms = (perms & ~own.deny) | own.allow
    return perms


def as_bits(value: object) -> int:
    """Accept an int or anything with ``.value`` (discord.Permissions)."""
    if isinstance(value, int):
        return value
    bits = getattr(value, "value", None)
    if not isinstance(bits, int):
        raise TypeError(f"expected permission bits, got {value!r}")
    return bits
