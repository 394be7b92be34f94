"""A local emulator of DashScope's async Wan 2.5 image API: editing (`wan2.5-i2i-preview`) and
text-to-image (`wan2.5-t2i-preview`).

Used by the tests, the end-to-end tests and the bot's `--sandbox` mode (try the bot in a real Discord server at
no cost). It speaks the real protocol closely enough for the official `dashscope` SDK:

- `POST /api/v1/services/aigc/image2image/image-synthesis` (edits),
  `POST /api/v1/services/aigc/text2image/image-synthesis` (text-to-image), `GET /api/v1/tasks/{id}`,
  `POST /api/v1/tasks/{id}/cancel`, `GET /api/v1/tasks`, `GET /api/v1/uploads?action=getPolicy&model=...`;
- a fake OSS upload host at `/oss-upload` (advertised as `upload_host`) and result URLs at
  `/results/<token>.png?Expires=...` that answer 403 AccessDenied once `result_ttl_seconds` have passed;
- a control API outside the auth: `POST /sandbox/faults` (a FaultRule, or a list, as JSON),
  `DELETE /sandbox/faults`, `GET /sandbox/state` (tasks by status, created_count, pending faults).

Emulator choices where the real service is undocumented:
- Text-to-image takes no `input.images` (400 if any), sizes of 768*768..1440*1440 pixels in all, and
  draws its results from the prompt (default size 1280*1280). Both models share the task slots, rate
  limits and task list (each listed task names its own model).
- A model in `denied_models` answers 403 `Model.AccessDenied` to any create naming it, checked before
  the body (so an empty create tells whether a model may be used).
- Results are made from the LAST input image (cropped to the output size, tinted by seed, captioned with the
  seed and prompt). Without `size` the output has `result_area` pixels (default 512*512, the real service
  ~1280*1280) at that image's aspect; an explicit `size` is honoured exactly.
- Cancel of a RUNNING or finished task: 400 UnsupportedOperation; of an unknown or expired id: 404 NotFound.
  A successful cancel answers `{"request_id", "output": {"task_id", "task_status": "CANCELED"}}`.
- Body, model, prompt, image-count, n, seed and size errors are synchronous 400s on create. Download, decode,
  format, 384..5000 px, aspect and 10 MB checks happen when the task runs and fail it (FAILED with
  `InvalidParameter.DataInspection` for downloads, `InvalidParameter` otherwise).
- PENDING answers carry `submit_time`; RUNNING adds `scheduled_time` and zeroed `task_metrics`; FAILED and
  CANCELED carry `end_time`; FAILED has `code`/`message` and no `usage`.
- A 6th task beyond `max_running` waits PENDING (FIFO) with `over_capacity="queue"` (the default); with
  `over_capacity="refuse"` its create gets 429 `Throttling` instead and no task is made.
- Tests can hold tasks at a stage (`emu.hold("pending" | "running")`, then `emu.release(...)`) to act while a
  task is surely there, instead of racing fixed running times.

Demo tags, written anywhere in the prompt (case-insensitive; `orig_prompt` keeps them as sent):
- `[fail:moderation]`: the task ends FAILED with `DataInspectionFailed`.
- `[fail:error]`: the task ends FAILED with `InternalError.Algo`.
- `[fail:partial]`: half of the `n` images (at least one) come back as `InternalError.Timeout` entries; the task
  still SUCCEEDS if one image is left, so use n >= 2 (with n=1 the task FAILS).
- `[slow:SECONDS]`: the task stays RUNNING that long (capped at an hour).
- `[throttle]`: this task is created normally; the NEXT create request gets 429 `Throttling.RateQuota`.
"""

from bot.sandbox.config import EmulatorConfig
from bot.sandbox.faults import FaultRule
from bot.sandbox.server import Emulator
from bot.sandbox.tasks import EmulatedTask, TaskStatus

__all__ = ["EmulatedTask", "Emulator", "EmulatorConfig", "FaultRule", "TaskStatus"]
