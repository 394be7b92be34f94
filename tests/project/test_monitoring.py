"""deploy/'s Grafana dashboard and Prometheus alert rules: they parse, every metric and label value
they ask for is on a running bot's /metrics, and the alerts fire when (and only when) they should
(`promtool test rules`, where Prometheus's promtool is installed; CI installs it)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.test_metrics import free_port, scrape_until
from tests.support.harness import World

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "wanbot.json"
RULES = DEPLOY / "prometheus" / "wanbot-alerts.yml"
RULE_TESTS = DEPLOY / "prometheus" / "wanbot-alerts.test.yml"
# Series Prometheus makes itself, and labels it adds to every scraped one.
PROMETHEUS_OWN = {"up"}
TARGET_LABELS = {"job", "instance"}


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def rules() -> list[dict[str, Any]]:
    (group,) = yaml.safe_load(RULES.read_text())["groups"]
    return group["rules"]


def panel_targets(panels: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    for panel in panels:
        yield from panel_targets(panel.get("panels", []))
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def expressions() -> list[tuple[str, str]]:
    """(where, PromQL) for every query of the dashboard and every alert rule. Grafana's own
    `$__rate_interval` becomes a duration Prometheus's parser knows."""
    found = [
        (f"panel {title!r}", expr.replace("$__rate_interval", "5m"))
        for title, expr in panel_targets(dashboard()["panels"])
    ]
    found += [(f"alert {rule['alert']}", rule["expr"]) for rule in rules()]
    return found


def selectors(node: Any) -> Iterator[promql_parser.VectorSelector]:
    """Every series selector in a parsed expression."""
    if isinstance(node, promql_parser.VectorSelector):
        yield node
        return
    if isinstance(node, promql_parser.MatrixSelector):
        yield node.vector_selector
        return
    if isinstance(node, promql_parser.Call):
        for arg in node.args:
            yield from selectors(arg)
        return
    for part in ("lhs", "rhs", "expr", "param"):
        child = getattr(node, part, None)
        if child is not None:
            yield from selectors(child)


async def families(port: int) -> dict[str, str]:
    """Each series name /metrics declares (a counter's with `_total`), and its type."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    return {
        family.name + ("_total" if family.type == "counter" else ""): family.type
        for family in text_string_to_metric_families(text)
    }


def test_the_dashboard_and_the_rules_parse_and_name_their_parts() -> None:
    board = dashboard()
    assert board["uid"] == "wanbot" and board["panels"]
    assert [v["name"] for v in board["templating"]["list"]] == ["datasource"]
    for title, _expr in panel_targets(board["panels"]):
        assert title
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert all(p["datasource"]["uid"] == "${datasource}" for p in panels)
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    parsed = 0
    for where, expr in expressions():
        try:
            tree = promql_parser.parse(expr)
        except ValueError as err:
            raise AssertionError(f"{where}: {err}") from None
        assert list(selectors(tree)), where
        parsed += 1
    assert parsed >= 30
    names = {rule["alert"] for rule in rules()}
    assert names == {
        "WanbotRunnerStalled",
        "WanbotBotWideCapNearlyReached",
        "WanbotWanCreatesFailing",
        "WanbotProcessNotHeartbeating",
    }
    for rule in rules():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    for path in (DEPLOY / "grafana" / "provisioning").rglob("*.yml"):
        assert yaml.safe_load(path.read_text())["apiVersion"] == 1, path


async def test_every_metric_they_ask_for_is_on_a_running_bots_metrics(world: World) -> None:
    """Each series and each label value the dashboard and the rules select is served by a bot
    that has done one job, with both caps set: none of the queries would stay empty for a typo."""
    w = world
    port = free_port()
    await w.start_bot(
        WANBOT_METRICS_PORT=str(port), WAN_GLOBAL_DAILY_LIMIT="40", WAN_SERVER_DAILY_LIMIT="30"
    )
    since = w.fd.mark()
    await w.wanedit(w.alice, "make it blue")
    await w.result_message(w.alice, since=since)
    seen = await scrape_until(
        port,
        lambda m: (
            m.get(("wanbot_heartbeat_timestamp_seconds", ()), 0) > 0
            and m.get(("wanbot_jobs_total", (("state", "done"),))) == 1
        ),
    )
    served: dict[str, list[dict[str, str]]] = {}
    for name, labels in seen:
        served.setdefault(name, []).append(dict(labels))
    # Counters by a label whose values come with the events (Discord's HTTP statuses, Wan's
    # error codes) have no series before the first one: declared, and asked for by no value.
    declared = await families(port)
    for where, expr in expressions():
        for selector in selectors(promql_parser.parse(expr)):
            name = selector.name
            if name in PROMETHEUS_OWN:
                continue
            if name not in served:
                assert declared.get(name) == "counter", f"{where}: {name} is not on /metrics"
                assert {m.name for m in selector.matchers.matchers} <= TARGET_LABELS, where
                continue
            for matcher in selector.matchers.matchers:
                if matcher.name in TARGET_LABELS:
                    continue
                values = {labels.get(matcher.name) for labels in served[name]}
                if matcher.op == promql_parser.MatchOp.Equal:
                    wanted = {matcher.value}
                else:
                    assert matcher.op == promql_parser.MatchOp.Re, (where, matcher)
                    wanted = set(matcher.value.split("|"))
                assert wanted <= values, f"{where}: {name}{{{matcher.name}}} has {values}"
    # What they read is the bot's: the caps from its settings, today's image from the store.
    assert seen[("wanbot_daily_cap_images", (("cap", "bot"),))] == 40
    assert seen[("wanbot_daily_cap_images", (("cap", "server_ceiling"),))] == 30
    assert seen[("wanbot_images_today", (("scope", "bot"),))] == 1


def test_the_alerts_fire_when_they_should() -> None:
    tool = shutil.which("promtool")
    if tool is None:
        reason = "promtool not installed (Debian's prometheus package has it)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must check the alert rules, but {reason}")
        pytest.skip(reason)
    checked = subprocess.run(
        [tool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [tool, "test", "rules", RULE_TESTS.name],
        capture_output=True,
        text=True,
        check=False,
        cwd=RULE_TESTS.parent,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # Every alert has cases that fire it.
    cases = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {
        check["alertname"]
        for case in cases
        for check in case["alert_rule_test"]
        if check["exp_alerts"]
    }
    assert fired == {rule["alert"] for rule in rules()}


def test_prometheus_loads_the_rules_compose_mounts() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (rule_file,) = config["rule_files"]
    assert re.fullmatch(r"/etc/prometheus/[\w.-]+", rule_file)
    assert (DEPLOY / "prometheus" / Path(rule_file).name).is_file()
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "wanbot"  # the rules' up{job="wanbot"}
