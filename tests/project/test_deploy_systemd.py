"""`deploy/wanbot.service`: systemd accepts it (`systemd-analyze verify`) and it says what the docs
promise: its own user, the `.env` as an EnvironmentFile, the database in its state directory, a stop
timeout longer than the bot's clean shutdown, and the hardening options."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import VARIABLES

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "wanbot.service"
VENV_PYTHON = "/opt/wanbot/venv/bin/python"
# The bot waits up to this long for create calls and deliveries in flight when it is stopped.
CLEAN_SHUTDOWN_SECONDS = 120


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """section -> key -> every value, in order. Not configparser: systemd keys repeat
    (`Environment=`), and a unit has no `%` interpolation or `:` separators."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"a setting before any section: {line!r}"
        assert "=" in line and not line.endswith("\\"), f"not KEY=VALUE on one line: {line!r}"
        key, value = line.split("=", 1)
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


UNIT_SETTINGS = parse_unit(UNIT.read_text())
SERVICE = UNIT_SETTINGS["Service"]


def one(key: str) -> str:
    values = SERVICE.get(key, [])
    assert len(values) == 1, f"[Service] {key}= should be set once, is {values}"
    return values[0]


def test_runs_as_its_own_user_with_the_env_file_and_a_state_directory() -> None:
    assert SERVICE.get("DynamicUser") == ["yes"] or SERVICE.get("User") == ["wanbot"]
    assert one("EnvironmentFile").startswith("/")  # no `-`: a missing .env is an error, not silence
    assert one("StateDirectory") == "wanbot"
    assert one("WorkingDirectory") == "/var/lib/wanbot"
    environment = dict(v.split("=", 1) for v in SERVICE["Environment"])
    assert environment["DATABASE_URL"] == "sqlite:////var/lib/wanbot/wanbot.db"
    known = {v.name for v in VARIABLES} | {"PYTHONUNBUFFERED"}
    assert set(environment) <= known, (
        f"settings bot/config.py does not know: {set(environment) - known}"
    )
    assert one("ExecStart") == f"{VENV_PYTHON} -m bot"


def test_restart_and_clean_stop() -> None:
    assert one("Restart") == "on-failure"
    assert one("KillSignal") == "SIGTERM"
    assert int(one("TimeoutStopSec")) >= CLEAN_SHUTDOWN_SECONDS + 20
    # A bad setting exits 2 (bot/__main__.py): restarting it would fail the same way for ever.
    assert one("RestartPreventExitStatus") == "2"
    assert UNIT_SETTINGS["Install"]["WantedBy"] == ["multi-user.target"]


def test_hardening() -> None:
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "LockPersonality": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter": "@system-service",
    }
    assert {key: one(key) for key in expected} == expected
    # Off on purpose (the unit says why): ctypes/libffi callbacks need writable+executable memory.
    assert "MemoryDenyWriteExecute" not in SERVICE


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        reason = "systemd-analyze not installed (Debian: apt-get install systemd)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; .ci/run should have installed it")
        pytest.skip(reason)
    # `verify` insists that ExecStart's binary exists; this machine has no /opt/wanbot/venv, so
    # verify a copy that starts the interpreter running the tests instead. Nothing else changes.
    text = UNIT.read_text()
    assert text.count(VENV_PYTHON) == 1
    copy = tmp_path / "wanbot.service"
    copy.write_text(text.replace(VENV_PYTHON, sys.executable))
    result = subprocess.run(
        [tool, "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "notice", "LC_ALL": "C"},
    )
    # verify exits 0 on unknown keys and unparsable values ("..., ignoring"): any output is a finding.
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and not output, output


def test_verify_would_catch_a_typo(tmp_path: Path) -> None:
    """The check above means something: the same run on a unit with a misspelt key reports it."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze not installed (the test above fails under CI=true)")
    copy = tmp_path / "wanbot.service"
    text = UNIT.read_text().replace(VENV_PYTHON, sys.executable)
    copy.write_text(text.replace("PrivateTmp=yes", "PrivateTemp=yes"))
    result = subprocess.run(
        [tool, "verify", "--man=no", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert "PrivateTemp" in result.stdout + result.stderr


def test_docs_install_steps_match_the_unit() -> None:
    """The docs' systemd steps put the venv, the env file and the unit where the unit expects."""
    page = (ROOT / "docs" / "deployment.md").read_text()
    section = page.split("## systemd\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", section, re.S)
    steps = block.splitlines()
    venv = VENV_PYTHON.removesuffix("/bin/python")
    assert f"sudo python3 -m venv {venv}" in steps
    assert f"sudo {venv}/bin/pip install ." in steps
    assert f"sudo install -D -m 600 .env {one('EnvironmentFile')}" in steps
    assert f"sudo cp deploy/{UNIT.name} /etc/systemd/system/" in steps
    assert f"sudo systemctl enable --now {UNIT.stem}" in steps
    assert steps[-1] == f"journalctl -u {UNIT.stem} -f"
