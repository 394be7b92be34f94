"""`python -m bot.i18n extract|update|compile|init LANG`: Babel's pybabel commands with this project's
paths and options, run from the repository root (so `babel.cfg` can name our extractor).
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.frontend import CommandLineInterface

from bot.i18n.catalogs import DOMAIN

ROOT = Path(__file__).resolve().parents[2]
LOCALES = "bot/locales"
TEMPLATE = f"{LOCALES}/{DOMAIN}.pot"

COMMANDS: dict[str, list[str]] = {
    # File names without line numbers: the template changes only when a message does.
    "extract": [
        "extract",
        "-F",
        "babel.cfg",
        "-k",
        "_n:1,2",
        "-o",
        TEMPLATE,
        "--add-location=file",
        "--sort-output",
        # One width for every command, so a regenerated catalogue differs only where messages do.
        "--width=100",
        "--project=wanbot",
        "--copyright-holder=wanbot contributors",
        "-c",
        "TRANSLATORS:",
        ".",
    ],
    "update": [
        "update",
        "-i",
        TEMPLATE,
        "-d",
        LOCALES,
        "-D",
        DOMAIN,
        "--no-fuzzy-matching",
        "--ignore-obsolete",
        "--width=100",
    ],
    "compile": ["compile", "-d", LOCALES, "-D", DOMAIN, "--statistics"],
}


def main(argv: list[str]) -> int:
    if argv[:1] == ["init"] and len(argv) == 2:
        args = ["init", "-i", TEMPLATE, "-d", LOCALES, "-D", DOMAIN, "-l", argv[1]]
    elif len(argv) == 1 and argv[0] in COMMANDS:
        args = COMMANDS[argv[0]]
    else:
        sys.stderr.write("usage: python -m bot.i18n extract | update | compile | init LANG\n")
        return 2
    if Path.cwd().resolve() != ROOT:
        sys.stderr.write(f"run this from the repository root ({ROOT})\n")
        return 2
    CommandLineInterface().run(["pybabel", *args])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
