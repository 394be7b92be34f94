"""`python -m bot check`: is this installation ready to run? One line per check, ok or what to fix.

Checks, in order: the settings, the database (opens and migrates), the Discord token (which bot and
application it belongs to), the bot's owner (who may use /wanowner) and whether the bot is public, the
Message Content intent (which reply-edit mode the bot runs in), the cost bounds (the caps in force and
the worst-case bill per day), who may use the bot in DMs, the DashScope key in the configured
region (a query for a task id that cannot exist: free), and which models the key may use (editing, and text-to-image unless
WAN_TEXT_TO_IMAGE=false: a create with an empty input, which no model can run, so free too). Prints
the invite URL. Nothing here spends money, and no token or key is ever printed.

This module is a CLI report: it writes to stdout with `print`; everything it calls logs as usual.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

import aiohttp
import discord

from bot.config import REGIONS, ConfigError, Settings, store_limits
from bot.reports import cap_text, price_text, worst_case_text
from bot.store import BotState, StoreError, open_store
from bot.store.urls import describe_url
from bot.wan import WanClient, WanError

# The bot's own flag mask and permission list, so the report cannot drift from what the bot does.
from cogs.gateway import MESSAGE_CONTENT_FLAGS, PERMISSIONS

DISCORD_API = "https://discord.com/api/v10"
TIMEOUT = 15.0
_KEY_REFUSED = ("InvalidApiKey", "invalid_api_key")

# What an admin does about the DashScope answers a key check can get (the user texts in
# bot.wan.errors speak to members, who are told to ask the admin: this is the admin).
_DASHSCOPE_FIXES: dict[str, str] = {
    "NOT AUTHORIZED": "DashScope refused the workspace or region: check DASHSCOPE_BASE_URL",
    "AccessDenied.Unpurchased": "Model Studio is not activated on this account: activate it in the "
    "Alibaba Cloud console (Model Studio)",
    "Arrearage": "the Alibaba Cloud account has an unpaid balance: settle it in the console",
    "Model.AccessDenied": "this key's workspace may not use the model: use a key of the default "
    "workspace or grant the model to this one",
    "Workspace.AccessDenied": "this key's workspace may not use the model: use a key of the default "
    "workspace or grant the model to this one",
}


@dataclass(frozen=True)
class CheckResult:
    """One line of the report: `detail` says what was found (ok), what to fix (not ok), or why the
    check could not run (`ok=None`: skipped because an earlier check failed; not counted)."""

    name: str
    ok: bool | None
    detail: str
    warn: bool = False  # works, but the owner should know (not counted as a failure)

    def line(self) -> str:
        mark = "[!!] " if self.warn else {True: "[ok] ", False: "[FIX]", None: "[--] "}[self.ok]
        return f"{mark} {self.name}: {self.detail}"


@dataclass
class DiscordApp:
    """What Discord says about the token's bot and application."""

    bot_name: str
    bot_id: int
    app_name: str
    app_id: int
    flags: int
    guild_count: int | None
    owner: str = "?"  # who owns the application, in words
    owner_ids: frozenset[int] = frozenset()
    public: bool = False

    @property
    def message_content(self) -> bool:
        return bool(self.flags & MESSAGE_CONTENT_FLAGS)


@dataclass
class Report:
    results: list[CheckResult] = field(default_factory=list)
    invite_url: str | None = None

    @property
    def ok(self) -> bool:
        return all(r.ok is not False for r in self.results)


# ---- the checks ---------------------------------------------------------------------------


def check_settings(settings: Settings, *, sandbox: bool) -> CheckResult:
    """Settings that parse can still not work together: the transport must suit the region."""
    name = "settings"
    if sandbox:
        return CheckResult(name, True, "sandbox mode: DashScope settings are not used")
    region = settings.region
    transport = settings.image_transport
    if region == "beijing" and transport == "url":
        return CheckResult(
            name,
            False,
            "WAN_IMAGE_TRANSPORT=url cannot work in Beijing (Wan there cannot reach Discord's "
            "CDN): remove it to use base64, which works in both regions",
        )
    if region == "singapore" and transport == "upload":
        return CheckResult(
            name,
            False,
            "WAN_IMAGE_TRANSPORT=upload (DashScope temporary storage) is documented for Beijing "
            "only: remove it to use base64, which works in both regions",
        )
    where = f"region {region}" if region else f"DashScope at {settings.dashscope_base_url}"
    model = "" if settings.wan_model == "wan2.5-i2i-preview" else f", model {settings.wan_model}"
    return CheckResult(name, True, f"{where}, image transport {transport}{model}")


async def check_database(settings: Settings) -> tuple[CheckResult, BotState | None]:
    """Whether the database opens (and migrates), and the owner's switches kept in it."""
    name = "database"
    try:
        store = await open_store(
            settings.database_url,
            default_daily_limit=settings.default_daily_limit,
            limits=store_limits(settings),
        )
    except StoreError as err:
        return CheckResult(name, False, f"{err} (DATABASE_URL)"), None
    try:
        state = await store.bot_state()
    finally:
        await store.close()
    # describe_url: a PostgreSQL URL carries a password, and this line is printed.
    detail = f"{describe_url(settings.database_url)} opens and is up to date"
    return CheckResult(name, True, detail), state


def check_owner(settings: Settings, app: DiscordApp | None) -> CheckResult:
    """Who may use /wanowner, and whether strangers can add the bot to their servers."""
    name = "owner"
    extra = sorted(settings.owner_ids)
    if app is None:
        if extra:
            return CheckResult(name, True, f"WANBOT_OWNER_IDS {', '.join(map(str, extra))}")
        return CheckResult(name, None, "unknown until the Discord token works")
    ids = ", ".join(str(i) for i in sorted(app.owner_ids | settings.owner_ids))
    detail = f"{app.owner} (user ids {ids})"
    if extra:
        detail += ", WANBOT_OWNER_IDS included"
    if app.public and not settings.allowed_guilds:
        return CheckResult(
            name,
            True,
            f"{detail}; the bot is PUBLIC and WAN_ALLOWED_GUILDS is empty: anyone can add it to "
            "their server and spend your images (untick Public Bot in the developer portal, Bot "
            "tab, or set WAN_ALLOWED_GUILDS)",
            warn=True,
        )
    where = (
        f"works only in {len(settings.allowed_guilds)} allowed server(s)"
        if settings.allowed_guilds
        else "private bot: only you can add it to servers"
        if not app.public
        else "public bot"
    )
    return CheckResult(name, True, f"{detail}; {where}")


def check_cost(settings: Settings, state: BotState | None) -> CheckResult:
    """The caps in force and the most one UTC day can cost."""
    name = "cost bounds"
    cap = state.global_cap if state is not None else settings.global_daily_limit or None
    runtime = (
        " (set with /wanowner cap)" if state is not None and state.global_cap_overridden else ""
    )
    dms = f"{settings.dm_daily_limit} images per member" if settings.dm_daily_limit else "off"
    detail = (
        f"bot-wide {cap_text(cap)}{runtime}, per server {cap_text(settings.server_daily_limit or None)}, "
        f"DMs {dms}; price {price_text(settings)}; worst case per day {worst_case_text(cap, settings)}"
    )
    if state is not None and state.paused:
        detail += "; PAUSED by the owner (/wanowner resume)"
    return CheckResult(name, True, detail, warn=cap is None)


async def fetch_discord_app(session: aiohttp.ClientSession, base: str, token: str) -> DiscordApp:
    """`GET /users/@me` and `/applications/@me` with the bot token. Raises `DiscordCheckError`."""
    headers = {"Authorization": f"Bot {token}", "User-Agent": "DiscordBot (wanbot check, 0.1)"}
    me = await _get_json(session, f"{base}/users/@me", headers)
    app = await _get_json(session, f"{base}/applications/@me", headers)
    count = app.get("approximate_guild_count")
    owner, owner_ids = _owners(app)
    return DiscordApp(
        bot_name=str(me.get("username", "?")),
        bot_id=int(me["id"]),
        app_name=str(app.get("name", "?")),
        app_id=int(app["id"]),
        flags=int(app.get("flags") or 0),
        guild_count=count if isinstance(count, int) else None,
        owner=owner,
        owner_ids=owner_ids,
        public=bool(app.get("bot_public")),
    )


def _owners(app: Mapping[str, Any]) -> tuple[str, frozenset[int]]:
    """The application's owner in words and their ids, as `gateway.owners_of` counts them."""
    team = app.get("team")
    if isinstance(team, Mapping):
        ids = {int(team["owner_user_id"])} if team.get("owner_user_id") else set()
        for member in team.get("members") or []:
            if member.get("role") in ("admin", "developer") or member["user"]["id"] == str(
                team.get("owner_user_id")
            ):
                ids.add(int(member["user"]["id"]))
        return f"team {team.get('name', '?')}", frozenset(ids)
    owner = app.get("owner") or {}
    if "id" not in owner:
        return "?", frozenset()
    return f"{owner.get('username', '?')}", frozenset({int(owner["id"])})


class DiscordCheckError(Exception):
    """What to fix, in one line (never the token)."""


async def _get_json(
    session: aiohttp.ClientSession, url: str, headers: Mapping[str, str]
) -> dict[str, Any]:
    try:
        async with session.get(url, headers=headers) as response:
            if response.status == 401:
                raise DiscordCheckError(
                    "Discord refused the token: copy it again from the developer portal "
                    "(your application, Bot tab, Reset Token) into DISCORD_TOKEN"
                )
            if response.status != 200:
                raise DiscordCheckError(
                    f"Discord answered HTTP {response.status} to GET {url.rsplit('/api', 1)[-1]}; "
                    "try again in a minute"
                )
            data = await response.json(content_type=None)
    except (TimeoutError, aiohttp.ClientError) as err:
        raise DiscordCheckError(
            f"could not reach Discord at {url.split('/api', 1)[0]} ({type(err).__name__}): "
            "check the network, or DISCORD_API_BASE if you set it"
        ) from None
    if not isinstance(data, dict) or "id" not in data:
        raise DiscordCheckError("Discord sent an answer the check could not read")
    return data


def check_dms(settings: Settings) -> CheckResult:
    """Who may use the bot in its DMs (the allowlist keeps servers out; this says who gets in)."""
    name = "DMs"
    each = f"{settings.dm_daily_limit} images a day each"
    if not settings.dm_daily_limit:
        return CheckResult(name, True, "off (WAN_DM_DAILY_LIMIT=0)")
    if not settings.allowed_guilds:
        return CheckResult(name, True, f"anyone who can message the bot, {each}")
    servers = len(settings.allowed_guilds)
    if settings.dm_anyone:
        return CheckResult(
            name,
            True,
            f"anyone who can message the bot, {each} (WAN_DM_ANYONE=true): people outside your "
            f"{servers} allowed server(s) can spend the bot-wide cap too",
            warn=True,
        )
    return CheckResult(
        name,
        True,
        f"members of the {servers} allowed server(s) only (asked of Discord), {each}; "
        "WAN_DM_ANYONE=true opens them to anyone",
    )


async def check_discord(settings: Settings) -> tuple[CheckResult, DiscordApp | None]:
    name = "discord token"
    if not settings.discord_token:
        return CheckResult(
            name,
            False,
            "DISCORD_TOKEN is not set: put your bot's token (developer portal, Bot tab) in .env",
        ), None
    base = (settings.discord_api_base or DISCORD_API).rstrip("/")
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as session:
            app = await fetch_discord_app(session, base, settings.discord_token)
    except DiscordCheckError as err:
        return CheckResult(name, False, str(err)), None
    servers = (
        ""
        if app.guild_count is None
        else "; not in any server yet: open the invite URL above"
        if app.guild_count == 0
        else f"; in {app.guild_count} server{'s' if app.guild_count != 1 else ''}"
    )
    detail = (
        f"bot {app.bot_name} (id {app.bot_id}) of application {app.app_name} "
        f"(id {app.app_id}){servers}"
    )
    return CheckResult(name, True, detail), app


def check_message_content(app: DiscordApp | None) -> CheckResult:
    """Not a failure either way: it says which reply-edit mode the bot will run in."""
    name = "reply edits"
    if app is None:
        return CheckResult(name, None, "unknown until the Discord token works")
    if app.message_content:
        return CheckResult(
            name, True, "Message Content intent on: replies to anyone's images are edit requests"
        )
    return CheckResult(
        name,
        True,
        "Message Content intent off: replies to the bot's own results work, other images go "
        "through the 'Edit with Wan' menu (turn the intent on in the developer portal, Bot tab, "
        "for replies to anyone's images)",
    )


def _probe_client(settings: Settings, key: str, base_url: str) -> WanClient:
    """A client for one-off checks: short timeouts, one retry."""
    return WanClient(
        key,
        base_url,
        model=settings.wan_model,
        request_timeout=TIMEOUT,
        max_retries=1,
        retry_base=0.2,
        retry_cap=1.0,
    )


async def _key_works(settings: Settings, key: str, base_url: str) -> None:
    """Raises WanError unless `key` is accepted at `base_url` (free: a query, not a task)."""
    async with _probe_client(settings, key, base_url) as wan:
        await wan.check_key()


async def check_dashscope(
    settings: Settings, *, sandbox: bool, regions: Mapping[str, str] = REGIONS
) -> CheckResult:
    """The key in the configured region; on a refusal, whether the other region takes it."""
    name = "dashscope key"
    base = settings.dashscope_base_url.rstrip("/")
    if not settings.dashscope_api_key:
        return CheckResult(
            name,
            False,
            "DASHSCOPE_API_KEY is not set: put your Model Studio API key in .env, or use "
            "--sandbox to try the bot without one",
        )
    key = settings.dashscope_api_key
    try:
        await _key_works(settings, key, base)
    except WanError as err:
        region = next((r for r, url in regions.items() if url.rstrip("/") == base), None)
        return CheckResult(name, False, await _dashscope_fix(settings, err, base, region, regions))
    if sandbox:
        return CheckResult(
            name, True, f"sandbox: the built-in Wan emulator at {base} answers (no key, no cost)"
        )
    region = next((r for r, url in regions.items() if url.rstrip("/") == base), None)
    where = f"in region {region}" if region else f"at {base}"
    return CheckResult(name, True, f"accepted {where} (checked without creating a task)")


async def _dashscope_fix(
    settings: Settings, err: WanError, base: str, region: str | None, regions: Mapping[str, str]
) -> str:
    if err.code in _KEY_REFUSED or (err.http_status == 401 and err.code not in _DASHSCOPE_FIXES):
        if region is not None:
            # Keys work only in the region that issued them: the commonest mistake, so try the
            # other official region before guessing.
            for other, url in regions.items():
                if other == region:
                    continue
                try:
                    await _key_works(settings, settings.dashscope_api_key or "", url)
                except WanError:
                    continue
                return (
                    f"this key belongs to the {other} region, not {region}: "
                    f"set DASHSCOPE_BASE_URL={other}"
                )
            return (
                f"DashScope refused the key in {region} (and in the other region): copy it "
                "again from Model Studio, API keys, into DASHSCOPE_API_KEY"
            )
        return (
            f"DashScope at {base} refused the key: copy it again from Model Studio (API keys), "
            "and use the base URL of the region that issued it (keys work in one region only)"
        )
    if err.code in _DASHSCOPE_FIXES:
        return _DASHSCOPE_FIXES[err.code]
    if err.code in ("NetworkError", "RequestTimeOut") or err.http_status is None:
        return (
            f"could not reach DashScope at {base} ({err.code}): check the network and "
            "DASHSCOPE_BASE_URL"
        )
    return f"DashScope answered {err.code} (HTTP {err.http_status}): {err.user_message}"


async def check_models(settings: Settings, *, key_ok: bool) -> CheckResult:
    """Which models the key may use: the editing model, and the text-to-image one unless it is off.
    A refusal (403 `Model.AccessDenied`, say) is a line saying what to do, never a traceback."""
    name = "models"
    if not key_ok or not settings.dashscope_api_key:
        return CheckResult(name, None, "unknown until the DashScope key works")
    uses = [(False, "edits")]
    if settings.text_to_image:
        uses.append((True, "/wanimagine"))
    usable: list[str] = []
    problems: list[str] = []
    base = settings.dashscope_base_url.rstrip("/")
    async with _probe_client(settings, settings.dashscope_api_key, base) as wan:
        for from_text, use in uses:
            model = wan.model_of(from_text=from_text)
            try:
                await wan.check_model(from_text=from_text)
            except WanError as err:
                problems.append(f"{model} ({use}) refused: {_model_fix(err, from_text)}")
                continue
            usable.append(f"{model} ({use})")
    parts = []
    if usable:
        parts.append("the key may use " + " and ".join(usable))
    parts += problems
    if not settings.text_to_image:
        parts.append("text-to-image is off (WAN_TEXT_TO_IMAGE=false), not checked")
    return CheckResult(name, not problems, "; ".join(parts))


def _model_fix(err: WanError, from_text: bool) -> str:
    """What the owner does about a model the key may not use."""
    if err.code in ("NetworkError", "RequestTimeOut") or err.http_status is None:
        return f"could not be checked ({err.code}): check the network"
    if err.code in _DASHSCOPE_FIXES:
        fix = _DASHSCOPE_FIXES[err.code]
    elif err.code in ("ModelNotFound", "model_not_found") or "not exist" in err.message.lower():
        fix = "DashScope does not know this model in this region"
    else:
        fix = f"DashScope answered {err.code} (HTTP {err.http_status})"
    if from_text:
        fix += ", or set WAN_TEXT_TO_IMAGE=false to leave /wanimagine out"
    elif "WAN_MODEL" not in fix:
        fix += " (WAN_MODEL)"
    return f"{err.code}: {fix}"


# ---- the report ---------------------------------------------------------------------------


async def collect(
    settings: Settings, *, sandbox: bool, regions: Mapping[str, str] = REGIONS
) -> Report:
    """Run every check; each one runs even when another failed, so one pass shows everything."""
    report = Report()
    report.results.append(check_settings(settings, sandbox=sandbox))
    database, state = await check_database(settings)
    report.results.append(database)
    discord_result, app = await check_discord(settings)
    report.results.append(discord_result)
    report.results.append(check_owner(settings, app))
    report.results.append(check_message_content(app))
    report.results.append(check_cost(settings, state))
    report.results.append(check_dms(settings))
    key = await check_dashscope(settings, sandbox=sandbox, regions=regions)
    report.results.append(key)
    report.results.append(await check_models(settings, key_ok=key.ok is True))
    if app is not None:
        report.invite_url = discord.utils.oauth_url(
            app.app_id, permissions=PERMISSIONS, scopes=("bot", "applications.commands")
        )
    return report


def print_report(report: Report, *, sandbox: bool, out: TextIO) -> None:
    print("wanbot check" + (" (sandbox mode)" if sandbox else ""), file=out)
    print(file=out)
    if report.invite_url:
        print("Invite the bot to a server with this URL:", file=out)
        print(f"  {report.invite_url}", file=out)
        print(file=out)
    for result in report.results:
        print(result.line(), file=out)
    failed = sum(r.ok is False for r in report.results)
    print(file=out)
    print(
        "All checks passed."
        if not failed
        else f"{failed} check{'s' if failed != 1 else ''} to fix (marked [FIX]); then run "
        "`python -m bot check` again.",
        file=out,
    )


async def run_check(
    settings: Settings,
    *,
    sandbox: bool = False,
    out: TextIO | None = None,
    regions: Mapping[str, str] = REGIONS,
) -> int:
    """Print the report; exit status 0 only when every check passed.

    In sandbox mode the launcher has already pointed `settings` at the in-process emulator.
    """
    report = await collect(settings, sandbox=sandbox, regions=regions)
    print_report(report, sandbox=sandbox, out=out or sys.stdout)
    return 0 if report.ok else 1


def report_config_error(err: ConfigError, *, out: TextIO | None = None) -> int:
    """Settings that do not even parse: the one line to fix; nothing else can be checked yet."""
    stream = out or sys.stdout
    print("wanbot check", file=stream)
    print(file=stream)
    print(CheckResult("settings", False, str(err)).line(), file=stream)
    print(file=stream)
    print("Fix the setting above, then run `python -m bot check` again.", file=stream)
    return 1
