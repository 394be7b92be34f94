"""Who may run which /wanquota subcommand, decided in code from the interaction itself.

Discord's command permissions (`default_permissions`) can be changed by a server's owner and apply to
the whole /wanquota group, which members need for `show`; so every admin action checks the
member's resolved permissions in this channel (`interaction.permissions`) here. A refusal carries a
`Text`, told to the member in their own language (`cogs.errors`).
"""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands

from bot.i18n import Text, _
from cogs.utils.admins import is_server_admin


class QuotaCheckFailure(app_commands.CheckFailure):
    """A refused /wanquota call. `str()` is the (ephemeral) answer; nothing was changed."""


def refuse_unless_admin(interaction: discord.Interaction[Any], action: Text) -> None:
    """Raise `QuotaCheckFailure` saying what is missing, unless the member may manage quotas.

    `action` is a verb phrase ("set a member's daily limit") that completes both sentences.
    """
    if interaction.guild_id is None:
        raise QuotaCheckFailure(
            _(
                "Quotas are set per server: you can {action} only in a server. Nothing was changed.",
                action=action,
            )
        )
    if not is_server_admin(interaction):
        raise QuotaCheckFailure(
            _(
                "You need the **Manage Server** permission to {action}. Nothing was changed.",
                action=action,
            )
        )


def quota_admin(action: Text) -> Any:
    """Check decorator for an admin subcommand; `action` completes "You need ... to <action>"."""

    def predicate(interaction: discord.Interaction[Any]) -> bool:
        refuse_unless_admin(interaction, action)
        return True

    return app_commands.check(predicate)
