"""FakeInteraction: a test's handle on one interaction and on what the bot did with it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .constants import CB_CHANNEL_MESSAGE, CB_DEFERRED_CHANNEL_MESSAGE, FLAG_EPHEMERAL, FLAG_LOADING
from .messages import MessageService
from .models import Channel, User
from .world import World

# Discord's interaction tokens live 15 minutes from the interaction's creation, the time its
# id encodes; discord.py computes Interaction.expires_at from the id the same way.
TOKEN_LIFETIME_S = 900.0


class InteractionRegistry:
    """Interactions by id and token, and the modals the bot has shown (by custom_id).

    ``token_ttl`` is how long the tokens of interactions created from now on stay valid on the
    fake's clock (Discord: 15 minutes). A shorter value is simulated faithfully: the
    interaction's id is dated ``TOKEN_LIFETIME_S - token_ttl`` earlier, so the client's
    ``Interaction.expires_at`` names the very instant the fake starts answering 401 / 50027."""

    def __init__(self, world: World, messages: MessageService, *, token_ttl: float) -> None:
        self.world = world
        self.messages = messages
        self.notifier = world.notifier
        self.token_ttl = token_ttl
        self.by_id: dict[int, FakeInteraction] = {}
        self.by_token: dict[str, FakeInteraction] = {}
        self.modals: dict[str, tuple[dict[str, Any], FakeInteraction]] = {}

    def add(self, ix: FakeInteraction) -> None:
        self.by_id[ix.id] = ix
        self.by_token[ix.token] = ix


class FakeInteraction:
    """A handle on one interaction the fake sent, and everything the bot did with it."""

    def __init__(
        self,
        service: InteractionRegistry,
        *,
        id: int,
        token: str,
        type: int,
        payload: dict[str, Any],
        user: User,
        channel: Channel,
        source_message_id: int | None,
        command_name: str | None,
        created_at: float,
        token_expires_at: float,
    ) -> None:
        self._service = service
        self.id = id
        self.token = token
        self.type = type
        self.payload = payload
        self.user = user
        self.channel_id = channel.id
        self.guild_id = channel.guild_id
        self.source_message_id = source_message_id
        self.command_name = command_name
        self.created_at = created_at
        self.response_type: int | None = None
        self.response_data: dict[str, Any] | None = None
        self.original_id: int | None = None
        self.original_history: list[dict[str, Any]] = []
        self.followup_ids: list[int] = []
        self.modal: dict[str, Any] | None = None
        self.autocomplete_choices: list[dict[str, Any]] | None = None
        self.token_expires_at = token_expires_at  # on the fake's clock (World.now)
        self.dead_token_calls = 0  # webhook calls refused with 401 / 50027 after expiry
        self.rejected_callbacks: list[dict[str, Any]] = []  # late or duplicate acks

    def __repr__(self) -> str:
        return (
            f"<FakeInteraction id={self.id} type={self.type} name={self.command_name!r} "
            f"response_type={self.response_type}>"
        )

    # -- what the bot did ----------------------------------------------------------------------

    @property
    def token_alive(self) -> bool:
        """Whether webhook calls with this interaction's token are still accepted."""
        return self._service.world.now() < self.token_expires_at

    @property
    def responded(self) -> bool:
        return self.response_type is not None

    @property
    def original(self) -> dict[str, Any] | None:
        """The ``@original`` message as it is now (None before a response or once deleted)."""
        msg = self._service.world.messages.get(self.original_id or 0)
        if msg is None or msg.deleted:
            return None
        return self._service.messages.render(msg)

    @property
    def followups(self) -> list[dict[str, Any]]:
        w = self._service.world
        return [
            self._service.messages.render(w.messages[i])
            for i in self.followup_ids
            if not w.messages[i].deleted
        ]

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Everything the user was shown for this interaction: the ``@original`` (once it is no
        longer the "thinking" placeholder) and then the follow-ups. After a type 5 deferral
        the first follow-up *replaces* the placeholder (as on Discord), so it is the original."""
        original = self.original
        head = [original] if original is not None and not original["flags"] & FLAG_LOADING else []
        return head + self.followups

    @property
    def ephemeral(self) -> bool:
        """Whether the response (message or deferral) is ephemeral (flag 64)."""
        msg = self._service.world.messages.get(self.original_id or 0)
        if msg is not None and self.response_type in (
            CB_CHANNEL_MESSAGE,
            CB_DEFERRED_CHANNEL_MESSAGE,
        ):
            return msg.ephemeral
        flags = (self.response_data or {}).get("flags") or 0
        return bool(flags & FLAG_EPHEMERAL)

    @property
    def loading(self) -> bool:
        """True while the deferred "thinking..." message has not been edited yet."""
        msg = self._service.world.messages.get(self.original_id or 0)
        return msg is not None and bool(msg.flags & FLAG_LOADING)

    async def wait_response(self, timeout: float = 5.0) -> FakeInteraction:
        """Wait for the initial callback (type 4/5/6/7/9)."""
        return await self.wait_for(lambda ix: ix.responded, timeout)

    async def wait_for(
        self, predicate: Callable[[FakeInteraction], Any], timeout: float = 5.0
    ) -> FakeInteraction:
        """Wait until ``predicate(self)`` is truthy, re-checked on every change."""
        await self._service.notifier.wait_until(
            lambda: self if predicate(self) else None, timeout, describe=lambda: repr(self)
        )
        return self

    async def wait_original(
        self, predicate: Callable[[dict[str, Any]], Any] | None = None, timeout: float = 5.0
    ) -> dict[str, Any]:
        """Wait for a non-loading ``@original`` matching ``predicate`` and return it."""

        def probe() -> dict[str, Any] | None:
            msg = self.original
            if msg is None or msg["flags"] & FLAG_LOADING:
                return None
            return msg if predicate is None or predicate(msg) else None

        return await self._service.notifier.wait_until(probe, timeout, describe=lambda: repr(self))
