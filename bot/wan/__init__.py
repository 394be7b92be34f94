"""Wan 2.5 image editing over DashScope: client, typed results, errors, polling, image transport."""

from bot.wan.client import DEFAULT_MODEL, WanClient
from bot.wan.errors import USER_MESSAGES, CreateOutcomeUnknown, WanError, user_message_for
from bot.wan.models import (
    CreatedTask,
    EditRequest,
    ImageResult,
    InputImage,
    TaskResult,
    TaskStatus,
)
from bot.wan.scheduler import PollConfig, PollScheduler

__all__ = [
    "DEFAULT_MODEL",
    "USER_MESSAGES",
    "CreateOutcomeUnknown",
    "CreatedTask",
    "EditRequest",
    "ImageResult",
    "InputImage",
    "PollConfig",
    "PollScheduler",
    "TaskResult",
    "TaskStatus",
    "WanClient",
    "WanError",
    "user_message_for",
]
