"""Fault injection: programmatic rules, the HTTP control endpoint's JSON form, and in-prompt demo tags."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, get_args

FaultOp = Literal["create", "get", "cancel", "list", "download", "upload", "policy", "task"]
FAULT_OPS: frozenset[str] = frozenset(get_args(FaultOp))

PARTIAL_CODE = "InternalError.Timeout"


@dataclass
class FaultRule:
    """One injected fault, used up by the next `times` matching requests (or tasks, for op="task").

    - HTTP ops ("create", "get", "cancel", "list", "download", "upload", "policy"): answer `status` with
      `code`/`message` (`message=None` = the standard text for the code). With `drop=True` the request is
      carried out (a create DOES make a task) and then the connection is closed without any response.
    - op="task": the next created task ends FAILED with `task_code`/`task_message`, or SUCCEEDS with
      `partial_failures` per-image `InternalError.Timeout` entries, and/or runs `running_seconds` long.
    - op="get" with `task_status`: the query answers 200 as usual but with this `task_status` instead
      of the real one (a status the API docs don't list, to test that clients keep polling).
    """

    op: FaultOp
    status: int = 500
    code: str = "InternalError"
    message: str | None = None
    times: int = 1
    drop: bool = False
    task_code: str | None = None
    task_message: str | None = None
    partial_failures: int = 0
    running_seconds: float | None = None
    task_status: str | None = None

    def __post_init__(self) -> None:
        if self.op not in FAULT_OPS:
            raise ValueError(f"op must be one of {sorted(FAULT_OPS)}, not {self.op!r}")
        if self.times < 1:
            raise ValueError("times must be at least 1")
        if not 100 <= self.status <= 599:
            raise ValueError("status must be an HTTP status code")
        if self.partial_failures < 0:
            raise ValueError("partial_failures must not be negative")
        if self.running_seconds is not None and self.running_seconds < 0:
            raise ValueError("running_seconds must not be negative")

    @classmethod
    def from_json(cls, data: Any) -> FaultRule:
        """Build from the control endpoint's JSON; raises ValueError on unknown keys or wrong types."""
        if not isinstance(data, dict):
            raise ValueError("a fault rule is a JSON object")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown fault rule field(s): {', '.join(unknown)}")
        checks: dict[str, tuple[type, ...]] = {
            "op": (str,),
            "status": (int,),
            "code": (str,),
            "message": (str, type(None)),
            "times": (int,),
            "drop": (bool,),
            "task_code": (str, type(None)),
            "task_message": (str, type(None)),
            "partial_failures": (int,),
            "running_seconds": (int, float, type(None)),
            "task_status": (str, type(None)),
        }
        for key, value in data.items():
            bad_bool = isinstance(value, bool) and bool not in checks[key]
            if bad_bool or not isinstance(value, checks[key]):
                raise ValueError(f"fault rule field {key!r} has the wrong type")
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class FaultQueue:
    """Pending rules in insertion order; the first rule matching an op is used, `times` counts down."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []

    def add(self, rule: FaultRule) -> None:
        self._rules.append(rule)

    def clear(self) -> None:
        self._rules.clear()

    def take(self, op: str) -> FaultRule | None:
        for rule in self._rules:
            if rule.op == op:
                rule.times -= 1
                if rule.times <= 0:
                    self._rules.remove(rule)
                return rule
        return None

    def pending(self) -> list[FaultRule]:
        return list(self._rules)


@dataclass
class TaskFault:
    """How one task deviates from a clean success (from a rule and/or prompt tags)."""

    code: str | None = None
    message: str | None = None
    partial_failures: int = 0
    running_seconds: float | None = None

    def merge_rule(self, rule: FaultRule) -> None:
        if rule.task_code:
            self.code, self.message = rule.task_code, rule.task_message
        self.partial_failures = max(self.partial_failures, rule.partial_failures)
        if rule.running_seconds is not None:
            self.running_seconds = rule.running_seconds


_TAG = re.compile(
    r"\[(fail:moderation|fail:partial|fail:error|throttle|slow:\s*(\d+(?:\.\d+)?))\]", re.I
)
MAX_SLOW_SECONDS = 3600.0


@dataclass(frozen=True)
class PromptTags:
    """Demo tags found in a prompt (see the package docstring)."""

    moderation: bool = False
    partial: bool = False
    error: bool = False
    throttle: bool = False
    slow_seconds: float | None = None

    @classmethod
    def parse(cls, prompt: str) -> PromptTags:
        found: dict[str, Any] = {}
        for match in _TAG.finditer(prompt):
            tag = match.group(1).lower()
            if match.group(2) is not None:
                found["slow_seconds"] = min(float(match.group(2)), MAX_SLOW_SECONDS)
            elif tag == "throttle":
                found["throttle"] = True
            else:
                found[tag.split(":", 1)[1]] = True
        return cls(**found)

    def apply(self, fault: TaskFault, n: int) -> None:
        if self.moderation:
            fault.code, fault.message = "DataInspectionFailed", None
        elif self.error:
            fault.code, fault.message = "InternalError.Algo", None
        if self.partial:
            # Half the images fail (at least one); with n=1 the only image fails and so does the task.
            fault.partial_failures = max(fault.partial_failures, max(1, n // 2))
        if self.slow_seconds is not None:
            fault.running_seconds = self.slow_seconds
