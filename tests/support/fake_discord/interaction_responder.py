"""The server side of interaction responses: the callback (types 1/4/5/6/7/8/9, with
``with_response``) and the interaction webhook (``@original``, follow-ups), with Discord's
rules: a 3 s window to acknowledge, one acknowledgement, 15 minute tokens."""

from __future__ import annotations

import logging
from typing import Any

from .commands import CHAT_INPUT, MESSAGE_COMMAND, USER_COMMAND
from .constants import (
    CB_AUTOCOMPLETE_RESULT,
    CB_CHANNEL_MESSAGE,
    CB_DEFERRED_CHANNEL_MESSAGE,
    CB_DEFERRED_UPDATE_MESSAGE,
    CB_MODAL,
    CB_PONG,
    CB_UPDATE_MESSAGE,
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    IX_APPLICATION_COMMAND,
    IX_AUTOCOMPLETE,
    IX_MESSAGE_COMPONENT,
    IX_MODAL_SUBMIT,
    IX_PING,
    MSG_CHAT_INPUT_COMMAND,
    MSG_CONTEXT_MENU_COMMAND,
    MSG_DEFAULT,
    MSG_REPLY,
    field_error,
)
from .errors import ApiError, invalid_form
from .interaction_handle import FakeInteraction, InteractionRegistry
from .message_input import (
    INTERACTION_FLAGS,
    Upload,
    UploadLimits,
    apply_edit,
    new_message_fields,
)
from .messages import StoredMessage

log = logging.getLogger(__name__)

_ALLOWED_CALLBACKS = {
    IX_PING: {CB_PONG},
    IX_APPLICATION_COMMAND: {CB_CHANNEL_MESSAGE, CB_DEFERRED_CHANNEL_MESSAGE, CB_MODAL},
    IX_MESSAGE_COMPONENT: {
        CB_CHANNEL_MESSAGE,
        CB_DEFERRED_CHANNEL_MESSAGE,
        CB_DEFERRED_UPDATE_MESSAGE,
        CB_UPDATE_MESSAGE,
        CB_MODAL,
    },
    IX_AUTOCOMPLETE: {CB_AUTOCOMPLETE_RESULT},
    IX_MODAL_SUBMIT: {
        CB_CHANNEL_MESSAGE,
        CB_DEFERRED_CHANNEL_MESSAGE,
        CB_DEFERRED_UPDATE_MESSAGE,
        CB_UPDATE_MESSAGE,
    },
}


class InteractionResponder:
    def __init__(self, registry: InteractionRegistry, *, ack_timeout: float) -> None:
        self.registry = registry
        self.world = registry.world
        self.messages = registry.messages
        self.notifier = registry.notifier
        self.ack_timeout = ack_timeout

    def _upload_limits(self, ix: FakeInteraction) -> UploadLimits:
        # Per file: what the interaction told the client (attachment_size_limit); per request:
        # the place's, as for any message.
        guild = self.world.guilds.get(ix.guild_id) if ix.guild_id else None
        return UploadLimits(
            int(ix.payload["attachment_size_limit"]), UploadLimits.of(guild).per_request
        )

    def callback(
        self, ix_id: int, token: str, body: dict[str, Any], uploads: list[Upload]
    ) -> dict[str, Any]:
        ix = self.registry.by_id.get(ix_id)
        if ix is None or ix.token != token:
            raise ApiError(404, 10062, "Unknown interaction")
        if ix.responded:
            ix.rejected_callbacks.append(body)
            log.warning("fake discord: %r acknowledged twice -> 40060", ix)
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        age = self.world.now() - ix.created_at
        if age > self.ack_timeout:
            ix.rejected_callbacks.append(body)
            self.notifier.changed()
            log.warning(
                "fake discord: %r acknowledged after %.2fs (limit %.1fs) -> 10062",
                ix,
                age,
                self.ack_timeout,
            )
            raise ApiError(404, 10062, "Unknown interaction")
        cb_type = body.get("type")
        allowed = set(_ALLOWED_CALLBACKS.get(ix.type, set()))
        if ix.type == IX_MODAL_SUBMIT and ix.source_message_id is None:
            allowed -= {CB_DEFERRED_UPDATE_MESSAGE, CB_UPDATE_MESSAGE}
        if cb_type not in allowed:
            raise invalid_form(
                field_error(
                    ["type"],
                    "INTERACTION_CALLBACK_TYPE_INVALID",
                    f"Callback type {cb_type} is not valid here",
                )
            )
        data = body.get("data") or {}
        message: StoredMessage | None = None
        if cb_type == CB_CHANNEL_MESSAGE:
            message = self._create_response_message(ix, data, uploads, loading=False)
        elif cb_type == CB_DEFERRED_CHANNEL_MESSAGE:
            message = self._create_response_message(ix, data, [], loading=True)
        elif cb_type == CB_DEFERRED_UPDATE_MESSAGE:
            ix.original_id = ix.source_message_id
        elif cb_type == CB_UPDATE_MESSAGE:
            message = self.world.messages[ix.source_message_id or 0]
            apply_edit(self.world, message, data, uploads, limits=self._upload_limits(ix))
            ix.original_id = message.id
            self.messages.updated(message)
        elif cb_type == CB_MODAL:
            self._check_modal(data)
            ix.modal = data
            self.registry.modals[data["custom_id"]] = (data, ix)
        elif cb_type == CB_AUTOCOMPLETE_RESULT:
            ix.autocomplete_choices = data.get("choices", [])
        ix.response_type = cb_type
        ix.response_data = data
        self._snapshot(ix)
        self.notifier.changed()
        result: dict[str, Any] = {
            "interaction": {"id": str(ix.id), "type": ix.type},
            "resource": {"type": cb_type},
        }
        if message is not None:
            result["interaction"].update(
                {
                    "response_message_id": str(message.id),
                    "response_message_loading": bool(message.flags & FLAG_LOADING),
                    "response_message_ephemeral": message.ephemeral,
                }
            )
            result["resource"]["message"] = self.messages.render(message)
        return result

    @staticmethod
    def _check_modal(data: dict[str, Any]) -> None:
        if not data.get("custom_id") or not data.get("title"):
            raise invalid_form(
                field_error(["data"], "BASE_TYPE_REQUIRED", "custom_id and title are required")
            )
        if len(data["title"]) > 45:
            raise invalid_form(
                field_error(
                    ["data", "title"], "BASE_TYPE_MAX_LENGTH", "Must be 45 or fewer in length."
                )
            )
        if not 1 <= len(data.get("components") or []) <= 5:
            raise invalid_form(
                field_error(
                    ["data", "components"],
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 5 in length.",
                )
            )

    def _interaction_metadata(self, ix: FakeInteraction) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "id": str(ix.id),
            "type": ix.type,
            "user": ix.user.payload(),
            "authorizing_integration_owners": ix.payload["authorizing_integration_owners"],
        }
        data = ix.payload["data"]
        if ix.type == IX_APPLICATION_COMMAND:
            meta["name"] = ix.command_name
            meta["command_type"] = data.get("type", CHAT_INPUT)
            if data.get("type") == MESSAGE_COMMAND:
                meta["target_message_id"] = data["target_id"]
            elif data.get("type") == USER_COMMAND:
                meta["target_user"] = self.world.users[int(data["target_id"])].payload()
        elif ix.type == IX_MESSAGE_COMPONENT:
            meta["interacted_message_id"] = str(ix.source_message_id)
        elif ix.type == IX_MODAL_SUBMIT:
            opener = self.registry.modals.get(data["custom_id"], (None, None))[1]
            if opener is not None:
                meta["triggering_interaction_metadata"] = self._interaction_metadata(opener)
        return meta

    def _create_response_message(
        self,
        ix: FakeInteraction,
        data: dict[str, Any],
        uploads: list[Upload],
        *,
        loading: bool,
        followup: bool = False,
    ) -> StoredMessage:
        w = self.world
        channel = w.channels.get(ix.channel_id)
        if channel is None:  # deleted since: its interaction's answers have nowhere to go
            raise ApiError(404, 10003, "Unknown Channel")
        flags = int(data.get("flags") or 0)
        if loading:
            fields: dict[str, Any] = {
                "content": "",
                "flags": FLAG_LOADING | (flags & FLAG_EPHEMERAL),
            }
        else:
            fields = new_message_fields(
                w,
                data,
                uploads,
                channel_id=channel.id,
                limits=self._upload_limits(ix),
                allowed_flags=INTERACTION_FLAGS,
            )
            fields["embeds"] = self.messages.normalize_embeds(
                fields["embeds"], fields["attachments"]
            )
            mentions, roles, everyone = self.messages.resolve_mentions(
                fields["content"], data.get("allowed_mentions"), None
            )
            fields.update(mention_ids=mentions, mention_roles=roles, mention_everyone=everyone)
        msg_type = MSG_DEFAULT
        if ix.type == IX_APPLICATION_COMMAND:
            is_menu = ix.payload["data"].get("type", CHAT_INPUT) != CHAT_INPUT
            msg_type = MSG_CONTEXT_MENU_COMMAND if is_menu else MSG_CHAT_INPUT_COMMAND
        reference = None
        original = w.messages.get(ix.original_id or 0)
        if followup and original is not None and not original.deleted and not original.ephemeral:
            msg_type = MSG_REPLY
            reference = {"type": 0, "channel_id": str(channel.id), "message_id": str(original.id)}
            if channel.guild_id:
                reference["guild_id"] = str(channel.guild_id)
        legacy = None  # the deprecated ``interaction`` field: only on the response itself
        if ix.type == IX_APPLICATION_COMMAND and not followup:
            legacy = {
                "id": str(ix.id),
                "type": ix.type,
                "name": ix.command_name,
                "user": ix.user.payload(),
            }
        msg = self.messages.create(
            channel,
            w.bot_user,
            type=msg_type,
            webhook_id=w.application_id,
            application_id=w.application_id,
            interaction_metadata=self._interaction_metadata(ix),
            interaction_legacy=legacy,
            reference=reference,
            referenced_id=original.id if reference and original else None,
            **fields,
        )
        if not followup:
            ix.original_id = msg.id
        return msg

    def _snapshot(self, ix: FakeInteraction) -> None:
        current = ix.original
        if current is not None and (not ix.original_history or ix.original_history[-1] != current):
            ix.original_history.append(current)

    # -- the interaction webhook -------------------------------------------------------------------

    def webhook_interaction(self, app_id: int, token: str) -> FakeInteraction:
        if app_id != self.world.application_id:
            raise ApiError(404, 10015, "Unknown Webhook")
        ix = self.registry.by_token.get(token)
        if ix is None or not ix.token_alive:
            log.info("fake discord: webhook call with a dead interaction token -> 50027")
            if ix is not None:
                ix.dead_token_calls += 1
            raise ApiError(401, 50027, "Invalid Webhook Token")
        return ix

    def _webhook_message(self, ix: FakeInteraction, message_id: str) -> StoredMessage:
        if message_id == "@original":
            target = ix.original_id
        else:
            target = int(message_id) if message_id.isdigit() else None
            if target not in ([ix.original_id, *ix.followup_ids]):
                target = None
        msg = self.world.messages.get(target or 0)
        if msg is None or msg.deleted:
            raise ApiError(404, 10008, "Unknown Message")
        return msg

    def get_message(self, ix: FakeInteraction, message_id: str) -> dict[str, Any]:
        return self.messages.render(self._webhook_message(ix, message_id))

    def edit_message(
        self, ix: FakeInteraction, message_id: str, payload: dict[str, Any], uploads: list[Upload]
    ) -> dict[str, Any]:
        msg = self._webhook_message(ix, message_id)
        was_loading = bool(msg.flags & FLAG_LOADING)
        apply_edit(self.world, msg, payload, uploads, limits=self._upload_limits(ix))
        msg.flags &= ~FLAG_LOADING
        if "embeds" in payload:
            msg.embeds = self.messages.normalize_embeds(msg.embeds, msg.attachments)
        if "content" in payload or "allowed_mentions" in payload:
            msg.mention_ids, msg.mention_roles, msg.mention_everyone = (
                self.messages.resolve_mentions(msg.content, payload.get("allowed_mentions"), None)
            )
        # Replacing the "thinking..." placeholder is not an edit in Discord's eyes.
        self.messages.updated(msg, edited=not was_loading)
        self._snapshot(ix)
        self.notifier.changed()
        return self.messages.render(msg)

    def delete_message(self, ix: FakeInteraction, message_id: str) -> None:
        self.messages.delete(self._webhook_message(ix, message_id))

    def followup(
        self, ix: FakeInteraction, payload: dict[str, Any], uploads: list[Upload]
    ) -> dict[str, Any]:
        if not ix.responded:
            raise ApiError(404, 10015, "Unknown Webhook")
        original = self.world.messages.get(ix.original_id or 0)
        if (
            ix.response_type == CB_DEFERRED_CHANNEL_MESSAGE
            and original is not None
            and original.flags & FLAG_LOADING
        ):
            # Discord: the first follow-up after a deferral replaces the "thinking" message.
            payload = {k: v for k, v in payload.items() if k != "flags"}
            return self.edit_message(ix, "@original", payload, uploads)
        msg = self._create_response_message(ix, payload, uploads, loading=False, followup=True)
        ix.followup_ids.append(msg.id)
        self.notifier.changed()
        return self.messages.render(msg)
