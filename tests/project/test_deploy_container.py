"""`Dockerfile` and `compose.yaml`, checked as far as a machine that cannot pull images allows.

No image is built here (docs/deployment.md). What is checked: the compose file parses and has the
two profiles and the monitoring one (Prometheus and Grafana on deploy/'s files); every variable the
image or compose sets is a setting `bot/config.py` knows (and validates); the HEALTHCHECK and CMD are
exact command lines the CLI accepts; secrets stay out of the build context; and the Dockerfile's
install steps, run as a script in a fresh virtual environment with the dependencies from the package
index, give a working `python -m bot`.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.__main__ import parse_args
from bot.config import VARIABLES, ConfigError, load_settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
SETTINGS = {v.name for v in VARIABLES}
SECRETS = {"DISCORD_TOKEN": "tok.en-123456", "DASHSCOPE_API_KEY": "sk-abcdef123456"}

CMD_ARGV = ["python", "-m", "bot"]
HEALTHCHECK_ARGV = ["python", "-m", "bot", "check", "--live"]
# The Dockerfile's RUN steps that change the system (users, folders) rather than install the
# package: not run by the venv test (they would change this machine), so listed here exactly.
SYSTEM_STEPS = (
    "useradd --system --user-group --uid 10001 --home-dir /data --no-create-home "
    "--shell /usr/sbin/nologin wanbot && mkdir /data && chown wanbot:wanbot /data",
)
# The interpreter's and pip's own variables, which the image may set besides the bot's settings.
NOT_SETTINGS = re.compile(r"^(PYTHON|PIP_)[A-Z_]+$")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) for each Dockerfile instruction, continuation lines joined."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        whole = pending + line
        pending = ""
        keyword, _, arguments = whole.partition(" ")
        result.append((keyword.upper(), arguments.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return result


STEPS = instructions(DOCKERFILE)


def only(keyword: str) -> str:
    found = [args for kw, args in STEPS if kw == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {found}"
    return found[0]


def last(keyword: str) -> str:
    return [args for kw, args in STEPS if kw == keyword][-1]


def image_environment() -> dict[str, str]:
    environment: dict[str, str] = {}
    for keyword, args in STEPS:
        if keyword == "ENV":
            environment.update(part.split("=", 1) for part in shlex.split(args))  # type: ignore[misc]
    return environment


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Compose's `${NAME:-default}` and `${NAME-default}`, with `env` set (none by default, as on
    a machine that has set nothing)."""
    given = env or {}

    def value_of(match: re.Match[str]) -> str:
        name, colon, default = match.group(1), match.group(2), match.group(3)
        if name in given and (given[name] or not colon):
            return given[name]
        return default

    return re.sub(r"\$\{(\w+)(:?)-([^}]*)\}", value_of, value)


def bot_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in COMPOSE["services"].items() if "build" in s}


def test_the_image_runs_as_a_user_with_its_data_in_a_volume() -> None:
    assert re.fullmatch(r"python:3\.(1[1-9])-slim", only("FROM"))
    assert last("USER") == "wanbot"
    assert only("STOPSIGNAL") == "SIGTERM"
    assert only("VOLUME") == "/data" and last("WORKDIR") == "/data"
    # Chowned before VOLUME: a new named volume copies the image's /data, owner included.
    order = [kw for kw, _ in STEPS]
    assert order.index("VOLUME") > max(i for i, (kw, a) in enumerate(STEPS) if "chown" in a)
    assert order.index("USER") > order.index("VOLUME")
    assert image_environment()["DATABASE_URL"] == "sqlite:////data/wanbot.db"


def test_cmd_and_healthcheck_are_exact_cli_commands() -> None:
    assert json.loads(only("CMD")) == CMD_ARGV
    options, _, command = only("HEALTHCHECK").partition(" CMD ")
    assert json.loads(command) == HEALTHCHECK_ARGV
    assert re.search(r"--start-period=\d+s", options) and "--interval=" in options

    assert parse_args(CMD_ARGV[3:]).command == "run"
    args = parse_args(HEALTHCHECK_ARGV[3:])
    assert args.command == "check" and args.live


def test_compose_has_the_two_profiles() -> None:
    services = COMPOSE["services"]
    profiles = {p for s in services.values() for p in s["profiles"]}
    assert profiles == {"sqlite", "postgres", "monitoring"}
    for name, service in bot_services().items():
        assert service["env_file"] == ".env", name
        assert "command" not in service, f"{name}: the image's CMD is the one tested"
        seconds = int(service["stop_grace_period"].removesuffix("s"))
        assert seconds >= 140, f"{name}: the clean shutdown takes up to 120 s"

    (sqlite,) = [s for s in bot_services().values() if s["profiles"] == ["sqlite"]]
    assert sqlite["environment"]["DATABASE_URL"] == "sqlite:////data/wanbot.db"
    volume = sqlite["volumes"][0].split(":")
    assert volume[1] == "/data" and volume[0] in COMPOSE["volumes"]  # named, not a bind mount

    (bot,) = [s for s in bot_services().values() if s["profiles"] == ["postgres"]]
    postgres = services["postgres"]
    assert postgres["image"] == "postgres:16" and postgres["profiles"] == ["postgres"]
    assert bot["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    chosen = {"POSTGRES_PASSWORD": "0f3a9c"}
    url = interpolate(bot["environment"]["DATABASE_URL"], chosen)
    pg = {k: interpolate(v, chosen) for k, v in postgres["environment"].items()}
    assert pg["POSTGRES_PASSWORD"] == "0f3a9c"
    assert url == (
        f"postgresql://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@postgres:5432/"
        f"{pg['POSTGRES_DB']}"
    )
    assert f"-U {pg['POSTGRES_USER']} -d {pg['POSTGRES_DB']}" in " ".join(
        postgres["healthcheck"]["test"]
    )

    # The docs' compose commands name these profiles and services.
    page = (ROOT / "docs" / "deployment.md").read_text()
    shown = re.findall(r"^docker compose --profile (\w+) (.*)$", page, re.M)
    assert len(shown) >= 3
    for profile, rest in shown:
        in_profile = [name for name, s in services.items() if profile in s["profiles"]]
        assert in_profile, f"docs: no profile {profile}"
        if rest.startswith(("logs -f ", "exec ")):
            service = rest.split()[-1] if rest.startswith("logs") else rest.split()[1]
            assert service in in_profile, f"docs: {rest} is not in profile {profile}"


def test_the_monitoring_profile_scrapes_each_bot_service() -> None:
    """Prometheus finds the bot services by name on the port they serve /metrics on, and loads
    the alert rules; Grafana gets its data source and the dashboard; both only on 127.0.0.1."""
    services = COMPOSE["services"]
    monitoring = {n for n, s in services.items() if s["profiles"] == ["monitoring"]}
    assert monitoring == {"prometheus", "grafana"}
    prometheus = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    (job,) = prometheus["scrape_configs"]
    (lookup,) = job["dns_sd_configs"]
    assert set(lookup["names"]) == set(bot_services())
    for name, service in bot_services().items():
        environment = service["environment"]
        assert environment["WANBOT_METRICS_HOST"] == "0.0.0.0", name
        assert int(environment["WANBOT_METRICS_PORT"]) == lookup["port"], name
    mounts = {
        name: dict(v.removesuffix(":ro").split(":", 1) for v in services[name]["volumes"])
        for name in monitoring
    }
    config_dir = mounts["prometheus"]["./deploy/prometheus"]
    assert f"--config.file={config_dir}/prometheus.yml" in services["prometheus"]["command"]
    assert all(Path(f).parent.as_posix() == config_dir for f in prometheus["rule_files"])
    grafana = mounts["grafana"]
    assert grafana["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/wanbot.yml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == grafana["./deploy/grafana/dashboards"]
    for name in monitoring:
        for source in mounts[name]:
            assert not source.startswith("./") or (ROOT / source).is_dir(), source
        assert all(str(p).startswith("127.0.0.1:") for p in services[name]["ports"]), name


def test_compose_itself_accepts_every_profile(tmp_path: Path) -> None:
    """`docker compose config` (or docker-compose's), where one is installed: the file as compose
    reads it, with each profile and the monitoring one beside it."""
    if (
        shutil.which("docker")
        and subprocess.run(
            ["docker", "compose", "version"], capture_output=True, check=False
        ).returncode
        == 0
    ):
        compose = ["docker", "compose"]
    elif shutil.which("docker-compose"):
        compose = ["docker-compose"]
    else:
        pytest.skip("neither `docker compose` nor docker-compose is installed")
    shutil.copy(ROOT / "compose.yaml", tmp_path)
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    (tmp_path / ".env").write_text("")  # the bot services' env_file
    for profile in ("sqlite", "postgres"):
        done = subprocess.run(
            [*compose, "--profile", profile, "--profile", "monitoring", "config"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert {"prometheus", "grafana"} <= set(yaml.safe_load(done.stdout)["services"])


def test_the_database_password_has_no_default() -> None:
    """Promise: no deployment runs on a password everyone can read in this file. Unset, the
    password is empty everywhere it goes, and the bot refuses to start on it with one line."""
    for name, service in COMPOSE["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if "POSTGRES_PASSWORD" in str(value):
                assert "POSTGRES_PASSWORD:-" not in str(value), f"{name}.{key} has a default"
    (bot,) = [s for s in bot_services().values() if s["profiles"] == ["postgres"]]
    unset = interpolate(bot["environment"]["DATABASE_URL"])
    assert unset == "postgresql://wanbot:@postgres:5432/wanbot"
    with pytest.raises(ConfigError) as refused:
        load_settings({**SECRETS, "DATABASE_URL": unset}, dotenv_path=None)
    assert refused.value.variable == "DATABASE_URL" and "POSTGRES_PASSWORD" in str(refused.value)


def test_every_variable_set_is_a_known_valid_setting() -> None:
    image = {k: v for k, v in image_environment().items() if not NOT_SETTINGS.match(k)}
    assert set(image) <= SETTINGS, set(image) - SETTINGS
    load_settings({**SECRETS, **image}, dotenv_path=None)
    for name, service in bot_services().items():
        # (Compose's own variables as the README asks them set.)
        environment = {
            k: interpolate(str(v), {"POSTGRES_PASSWORD": "0f3a9c"})
            for k, v in service["environment"].items()
        }
        assert set(environment) <= SETTINGS, f"{name}: {set(environment) - SETTINGS}"
        # What the container sees: the image's ENV, then compose's environment on top.
        seen = {**SECRETS, **image, **environment}
        load_settings(seen, dotenv_path=None)


def test_secrets_and_local_state_stay_out_of_the_build_context() -> None:
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert {".env", "*.db", ".git"} <= set(ignored)
    for keyword, args in STEPS:
        if keyword == "COPY":
            *sources, _ = shlex.split(args)
            for source in sources:
                hit = [p for p in ignored if fnmatch.fnmatch(source.rstrip("/"), p.rstrip("/"))]
                assert not hit, f"COPY {source} is excluded by .dockerignore {hit}"


def installed_modules_script() -> str:
    """Run by the venv's interpreter: import every module of the installed packages; print them."""
    return (
        "import importlib, pkgutil, sys\n"
        "names = []\n"
        "for top in ('bot', 'cogs'):\n"
        "    package = importlib.import_module(top)\n"
        "    assert package.__file__.startswith(sys.prefix), package.__file__\n"
        "    names.append(top)\n"
        "    for info in pkgutil.walk_packages(package.__path__, top + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "        names.append(info.name)\n"
        "print('\\n'.join(sorted(names)))\n"
    )


def source_modules() -> list[str]:
    names = []
    for top in ("bot", "cogs"):
        for path in (ROOT / top).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(names)


@pytest.mark.timeout(300)
def test_install_steps_work_in_a_fresh_venv(tmp_path: Path) -> None:
    """The Dockerfile's COPY and RUN steps, replayed: a build context made from the COPY lines, a
    fresh venv standing in for the base image's Python (no packages of this machine), and each
    install step run by a shell with that venv first on PATH. About 25 s, most of it pip fetching
    the dependencies from the package index, as `docker build` would."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    environment = {
        **{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
        **image_environment(),
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
    }
    workdir: Path | None = None
    for keyword, args in STEPS:
        if keyword == "WORKDIR":
            workdir = tmp_path / args.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            assert workdir is not None
            *sources, target = shlex.split(args)
            for source in sources:
                origin = ROOT / source
                if origin.is_dir():  # `COPY bot/ bot/`: the folder's contents into the target
                    ignore = shutil.ignore_patterns("__pycache__")
                    shutil.copytree(origin, workdir / target, ignore=ignore)
                else:  # `COPY a b ./`: files into the target folder
                    assert target.endswith("/"), f"COPY {args}: copy files into a folder/"
                    (workdir / target).mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, workdir / target / origin.name)
        elif keyword == "RUN" and args in SYSTEM_STEPS:
            continue
        elif keyword == "RUN":
            assert workdir is not None
            assert shlex.split(args)[0] in ("pip", "python"), f"a new kind of RUN step: {args}"
            result = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", args],
                cwd=workdir,
                env=environment,
                capture_output=True,
                text=True,
                timeout=240,
            )
            assert result.returncode == 0, f"RUN {args}\n{result.stdout}\n{result.stderr}"

    # The image's last WORKDIR (/data), not the source folder: the installed package must work.
    assert workdir is not None and workdir.name == "data"
    python = str(venv / "bin" / "python")
    usage = subprocess.run(
        [python, *CMD_ARGV[1:], "--help"],
        cwd=workdir,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert usage.returncode == 0 and "usage: python -m bot" in usage.stdout, usage.stderr
    imported = subprocess.run(
        [python, "-c", installed_modules_script()],
        cwd=workdir,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.split() == source_modules(), "the installed package lacks modules"
