"""The README's translation commands (`python -m bot.i18n ...`), run on a fresh copy of the code."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
ZH = Path("bot/locales/zh_CN/LC_MESSAGES/wanbot.po")


def _run(cwd: Path, *args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    done = subprocess.run(
        [sys.executable, "-m", "bot.i18n", *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def _translations(path: Path) -> dict[object, object]:
    with path.open("rb") as fh:
        return {m.id: m.string for m in read_po(fh) if m.id}


def test_catalogue_commands_from_a_fresh_copy(tmp_path: Path) -> None:
    """Promise: extract + update + compile on the committed code changes no translation (the
    catalogues are up to date), and `init` starts a new language from the template."""
    for folder in ("bot", "cogs"):
        shutil.copytree(
            ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "babel.cfg", tmp_path)
    _run(tmp_path, "extract")
    _run(tmp_path, "update")
    _run(tmp_path, "compile")
    assert _translations(tmp_path / ZH) == _translations(ROOT / ZH)
    with (tmp_path / ZH).with_suffix(".mo").open("rb") as fh:
        assert any(m.string == "用通义万相编辑" for m in read_mo(fh))
    _run(tmp_path, "init", "ja")
    new = tmp_path / "bot/locales/ja/LC_MESSAGES/wanbot.po"
    assert set(_translations(new)) == set(_translations(ROOT / ZH))
