"""Wan 2.5 image editing and text-to-image over DashScope: client, typed results, errors, polling,
image transport."""

from bot.wan.client import DEFAULT_MODEL, IMAGINE_MODEL, WanClient
from bot.wan.errors import USER_MESSAGES, CreateOutcomeUnknown, WanError, user_message_for
from bot.wan.models import (
    CreatedTask,
    EditRequest,
    ImageResult,
    ImagineRequest,
    InputImage,
    TaskResult,
    TaskStatus,
)
from bot.wan.scheduler import PollConfig, PollScheduler

__all__ = [
    "DEFAULT_MODEL",
    "IMAGINE_MODEL",
    "USER_MESSAGES",
    "CreateOutcomeUnknown",
    "CreatedTask",
    "EditRequest",
    "ImageResult",
    "ImagineRequest",
    "InputImage",
    "PollConfig",
    "PollScheduler",
    "TaskResult",
    "TaskStatus",
    "WanClient",
    "WanError",
    "user_message_for",
]
