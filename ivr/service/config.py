"""`ivr serve` settings: one typed object from a YAML/TOML file, then environment overrides.

    # ivr.yaml (every key optional)
    listen:
      sip:         {host: 127.0.0.1, port: 5060, public_host: null, allow: [127.0.0.0/8],
                    users: {alice: IVR_SIP_PASSWORD_ALICE}, transfer_mode: auto, rate_limit_per_s: 20,
                    trusted: [10.0.0.5]}       # the proxy/trunks: never rate limited (addresses or CIDRs)
      ws:          {host: 127.0.0.1, port: 8080, path: /media}     # token: env IVR_WS_TOKEN
      audiosocket: {host: 127.0.0.1, port: 9092, allow: []}
      http:        {host: 127.0.0.1, port: 8081}                   # /health and /status
    flows:
      default: flows/retail/retail.yaml         # answers every call no route names
      routes: {"+15550100": flows/retail/retail.yaml, "+15550199": flows/demo.yaml}
      reload: true                               # hot reload on file change (and when an alias moves)
      versions_dir: flows.d                      # published versions (`ivr flows publish`); a route or the
                                                 # default may be versions:NAME@ALIAS (see docs/serve.md)
      versions_database: null                    # or postgresql://ivr@host:5432/ivr: versions shared by all nodes
    engines: {asr: auto, model: null, models_dir: models, voice: null}
    limits: {max_calls: 16, max_call: 1h, shutdown_grace: 30s}
    records: {dir: records,                      # one JSON record per call ("" for none)
              database: sqlite:///records/ivr.sqlite3,   # or postgresql://ivr@host:5432/ivr; "" for none
              retention_days: 0, spool_dir: records/spool,
              transcripts: true,                 # or {default: true, flows: {acme-retail: false}}
              recordings: false}                 # stereo WAV per call (consent); same shapes as transcripts
    busy_prompt: "All our lines are busy. Please call again in a few minutes."
    web: {users: users.json,                     # web page logins (`ivr users add`), beside this file
          session: 8h, idle_timeout: 30min,      # a session ends at the first of the two
          secure_cookie: false}                  # true when served over HTTPS (a TLS proxy)
    reports: {agent_cost_per_minute: 0.85, currency: EUR}   # cost saved = contained minutes x this
    node: node1                                  # this node's name in a cluster (default host name:SIP port)
    console: {dispositions: [resolved, follow_up, escalated, wrong_number],   # the agent console (/console)
              screen_pop_url: "https://crm.example.com/calls/{call_id}?phone={caller}",   # values URL-escaped
              screen_pop_window: false,          # also open it in a window at the pop (else a link)
              disconnect_grace: 15s,             # an idle agent whose consoles all closed goes away after this
              origins: []}                       # other origins that may open /console/ws (a proxy's name)

Environment (wins over the file): IVR_MAX_CALLS, IVR_SIP, IVR_WS, IVR_AUDIOSOCKET, IVR_HTTP
("host:port" or "off"), IVR_FLOW (default flow), IVR_VERSIONS_DIR, IVR_VERSIONS_DATABASE (URL or "off"), IVR_ASR,
IVR_MODELS_DIR, IVR_RECORDS_DIR,
IVR_DATABASE (records database URL or "off"), IVR_WS_TOKEN (the bridge's shared secret) and
IVR_METRICS_TOKEN (bearer token for /metrics), IVR_WEBHOOK_TOKEN (the bridges' webhooks /calls/ID/transfer
and /twilio/after-stream), IVR_USERS (the users file), IVR_NODE (`node:`): secrets never go in the file.
"""

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ivr.agents.settings import AgentSettings, parse_agents
from ivr.durations import DurationError, parse_duration_ms
from ivr.errors import UserError
from ivr.web.auth import AuthSettings
from ivr.web.console import ConsoleSettings, check_screen_pop_url

TOP_KEYS = {"listen", "flows", "engines", "limits", "records", "busy_prompt", "web", "reports", "console", "agents",
            "node"}
CONSOLE_KEYS = {"dispositions", "screen_pop_url", "screen_pop_window", "disconnect_grace", "origins"}
WEB_KEYS = {"users", "session", "idle_timeout", "secure_cookie"}
LISTENERS = ("sip", "ws", "audiosocket", "http")
DEFAULT_PORTS = {"sip": 5060, "ws": 8080, "audiosocket": 9092, "http": 8081}


@dataclass(slots=True)
class Listener:
    host: str = "127.0.0.1"
    port: int = 0
    options: dict = field(default_factory=dict)


@dataclass(slots=True)
class ServeConfig:
    listeners: dict[str, Listener] = field(default_factory=dict)
    default_flow: Path | None = None
    routes: dict[str, Path] = field(default_factory=dict)
    reload: bool = True
    versions_dir: Path = Path("flows.d")   # published flow versions, for versions:NAME@ALIAS routes
    versions_database: str | None = None   # ... or in PostgreSQL (ivr/flow/versions_pg.py): every node sees them
    asr: str = "auto"
    model: Path | None = None
    models_dir: Path = Path("models")
    voice: str | None = None
    max_calls: int = 16
    max_call_ms: int = 3_600_000
    shutdown_grace_ms: int = 30_000
    records_dir: Path | None = Path("records")
    busy_prompt: str = "All our lines are busy. Please call again in a few minutes."
    ws_token: str | None = None
    database: str | None = None          # records database URL; None: records/ivr.sqlite3 beside the JSON records
    database_base: Path = Path(".")      # relative sqlite paths are relative to this (the config's folder)
    retention_days: float = 0            # delete records older than this; 0 keeps them
    spool_dir: Path | None = None        # None: records/spool beside the database
    transcripts: bool = True             # keep heard/said texts (recording consent) ...
    transcripts_flows: dict[str, bool] = field(default_factory=dict)   # ... per flow name
    recordings: bool = False             # stereo WAV per call under records_dir (ivr/recordings.py) ...
    recordings_flows: dict[str, bool] = field(default_factory=dict)    # ... per flow name
    metrics_token: str | None = None
    auth: AuthSettings = field(default_factory=AuthSettings)   # web logins and the webhooks' token
    agent_cost_per_minute: float | None = None   # reports: what an agent minute costs (cost saved)
    currency: str = ""
    console: ConsoleSettings = field(default_factory=ConsoleSettings)   # the agent console (/console)
    agents: AgentSettings = field(default_factory=AgentSettings)        # queues and agents' phones (ivr/agents)
    node: str = ""      # this node's name in a cluster (the consoles show it); "" = host name:SIP port

    def database_url(self) -> str | None:
        """The records database URL, or None when there is to be none."""
        if self.database == "":
            return None
        if self.database:
            return self.database
        return f"sqlite:///{((self.records_dir or self.database_base / 'records') / 'ivr.sqlite3').absolute()}"

    def spool_path(self) -> Path:
        return self.spool_dir or (self.records_dir or self.database_base / "records") / "spool"

    def flow_paths(self) -> list[Path]:
        return list(dict.fromkeys([*([self.default_flow] if self.default_flow else []), *self.routes.values()]))


def parse_address(text: str, what: str) -> Listener:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise UserError(f"{what}: '{text}' is not host:port", f"e.g. --{what} 127.0.0.1:5060")
    return Listener(host.strip("[]"), int(port))


def load_config(path: Path | None, env: dict[str, str] | None = None) -> ServeConfig:
    env = dict(os.environ if env is None else env)
    data = _read(path) if path else {}
    base = path.parent if path else Path.cwd()
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise UserError(f"{path}: unknown key '{sorted(unknown)[0]}'", "keys: " + ", ".join(sorted(TOP_KEYS)))
    cfg = ServeConfig()
    for name, spec in (_section(data, "listen", path) or {}).items():
        if name not in LISTENERS:
            raise UserError(f"{path}: unknown listener '{name}'", "listeners: " + ", ".join(LISTENERS))
        if spec in (None, False, "off"):
            continue
        spec = dict(spec or {})
        cfg.listeners[name] = Listener(str(spec.pop("host", "127.0.0.1")), int(spec.pop("port", DEFAULT_PORTS[name])),
                                       spec)
        if name == "sip":
            _sip_networks(spec, path)
    flows = _section(data, "flows", path)
    if flows.get("default"):
        cfg.default_flow = _flow_ref(flows["default"], base)
    cfg.routes = {str(k): _flow_ref(v, base) for k, v in (flows.get("routes") or {}).items()}
    cfg.versions_dir = base / str(flows.get("versions_dir") or "flows.d")
    cfg.versions_database = str(flows["versions_database"]) if flows.get("versions_database") else None
    cfg.reload = _bool(flows.get("reload", True), "flows.reload", path)
    engines = _section(data, "engines", path)
    cfg.asr = str(engines.get("asr", "auto"))
    cfg.model = base / str(engines["model"]) if engines.get("model") else None
    cfg.models_dir = base / str(engines.get("models_dir", "models"))
    cfg.voice = engines.get("voice")
    limits = _section(data, "limits", path)
    cfg.max_calls = _positive(limits.get("max_calls", cfg.max_calls), "limits.max_calls", path)
    cfg.max_call_ms = _duration(limits.get("max_call", "1h"), "limits.max_call", path)
    cfg.shutdown_grace_ms = _duration(limits.get("shutdown_grace", "30s"), "limits.shutdown_grace", path)
    records = _section(data, "records", path)
    cfg.records_dir = base / str(records.get("dir", "records")) if records.get("dir", "records") else None
    _records_db(cfg, records, base, path)
    cfg.busy_prompt = str(data.get("busy_prompt", cfg.busy_prompt))
    _web(cfg, _section(data, "web", path), base, path)
    _reports(cfg, _section(data, "reports", path), path)
    _console(cfg, _section(data, "console", path), path)
    cfg.agents = parse_agents(_section(data, "agents", path), path)
    cfg.node = _node(data.get("node", ""), path)
    _apply_env(cfg, env)
    return cfg


def _sip_networks(options: dict, path: Path | None) -> None:
    """listen.sip allow and trusted: addresses or CIDRs, checked here so a typo stops `ivr serve` naming it."""
    import ipaddress

    for key in ("allow", "trusted"):
        value = options.get(key)
        if value is None:
            continue
        options[key] = value = [value] if isinstance(value, str) else value
        if not isinstance(value, list):
            raise UserError(f"{path}: listen.sip.{key} must be a list of addresses or CIDRs",
                            f"e.g. {key}: [10.0.0.5, 192.0.2.0/24]")
        for item in value:
            try:
                ipaddress.ip_network(str(item).strip(), strict=False)
            except ValueError:
                raise UserError(f"{path}: listen.sip.{key}: {item!r} is not an IP address or CIDR",
                                f"e.g. {key}: [10.0.0.5, 192.0.2.0/24]") from None


def _flow_ref(value, base: Path) -> Path:
    """A flow file relative to the config, or a published flow's alias (`versions:NAME@live`) as is."""
    from ivr.flow.versions import parse_ref

    return Path(str(value)) if parse_ref(value) is not None else base / str(value)


def _apply_env(cfg: ServeConfig, env: dict[str, str]) -> None:
    for name in LISTENERS:
        value = env.get(f"IVR_{name.upper()}")
        if value == "off":
            cfg.listeners.pop(name, None)
        elif value:
            old = cfg.listeners.get(name)
            listener = parse_address(value, name)
            listener.options = old.options if old else {}
            cfg.listeners[name] = listener
    if env.get("IVR_NODE"):
        cfg.node = _node(env["IVR_NODE"], "IVR_NODE")
    if env.get("IVR_MAX_CALLS"):
        cfg.max_calls = _positive(env["IVR_MAX_CALLS"], "IVR_MAX_CALLS", None)
    if env.get("IVR_FLOW"):
        cfg.default_flow = Path(env["IVR_FLOW"])
    if env.get("IVR_VERSIONS_DIR"):
        cfg.versions_dir = Path(env["IVR_VERSIONS_DIR"])
    if env.get("IVR_VERSIONS_DATABASE"):
        cfg.versions_database = None if env["IVR_VERSIONS_DATABASE"] == "off" else env["IVR_VERSIONS_DATABASE"]
    if env.get("IVR_ASR"):
        cfg.asr = env["IVR_ASR"]
    if env.get("IVR_MODELS_DIR"):
        cfg.models_dir = Path(env["IVR_MODELS_DIR"])
    if env.get("IVR_RECORDS_DIR"):
        cfg.records_dir = Path(env["IVR_RECORDS_DIR"])
    cfg.ws_token = env.get("IVR_WS_TOKEN") or None
    cfg.metrics_token = env.get("IVR_METRICS_TOKEN") or None
    cfg.auth.webhook_token = env.get("IVR_WEBHOOK_TOKEN") or None
    if env.get("IVR_USERS"):
        cfg.auth.users_file = Path(env["IVR_USERS"])
    if env.get("IVR_DATABASE"):
        cfg.database = "" if env["IVR_DATABASE"] == "off" else env["IVR_DATABASE"]
        cfg.database_base = Path.cwd()


def _node(value, where) -> str:
    """node: a short name without spaces (node1, ivr-a:5060); the consoles show it beside each call."""
    import re

    text = "" if value is None else str(value)
    if text and not re.fullmatch(r"[A-Za-z0-9._:@/-]{1,64}", text):
        raise UserError(f"{where}: node must be 1-64 letters, digits or . _ : @ / -, not {text!r}", "e.g. node: node1")
    return text


def _web(cfg: ServeConfig, web: dict, base: Path, path) -> None:
    unknown = set(web) - WEB_KEYS
    if unknown:
        raise UserError(f"{path}: unknown key web.{sorted(unknown)[0]}", "web keys: " + ", ".join(sorted(WEB_KEYS)))
    cfg.auth.users_file = base / str(web.get("users") or "users.json")
    cfg.auth.session_ttl_ms = _duration(web.get("session", "8h"), "web.session", path)
    cfg.auth.idle_timeout_ms = _duration(web.get("idle_timeout", "30min"), "web.idle_timeout", path)
    cfg.auth.secure_cookie = _bool(web.get("secure_cookie", False), "web.secure_cookie", path)


def _reports(cfg: ServeConfig, reports: dict, path) -> None:
    unknown = set(reports) - {"agent_cost_per_minute", "currency"}
    if unknown:
        raise UserError(f"{path}: unknown key reports.{sorted(unknown)[0]}", "reports keys: agent_cost_per_minute, "
                        "currency")
    cost = reports.get("agent_cost_per_minute")
    if cost is not None and (isinstance(cost, bool) or not isinstance(cost, int | float) or cost < 0):
        raise UserError(f"{path}: reports.agent_cost_per_minute must be a number >= 0, not {cost!r}",
                        "e.g. agent_cost_per_minute: 0.85 with currency: EUR")
    cfg.agent_cost_per_minute = float(cost) if cost is not None else None
    cfg.currency = str(reports.get("currency") or "")


def _console(cfg: ServeConfig, console: dict, path) -> None:
    unknown = set(console) - CONSOLE_KEYS
    if unknown:
        raise UserError(f"{path}: unknown key console.{sorted(unknown)[0]}",
                        "console keys: " + ", ".join(sorted(CONSOLE_KEYS)))
    settings = cfg.console
    if "dispositions" in console:
        names = console["dispositions"]
        if (not isinstance(names, list) or not names or len(set(map(str, names))) != len(names)
                or not all(isinstance(n, str) and 0 < len(n) <= 60 and n.strip() == n for n in names)):
            raise UserError(f"{path}: console.dispositions must be a list of distinct names (1-60 characters)",
                            "e.g. dispositions: [resolved, follow_up, escalated, wrong_number]")
        settings.dispositions = tuple(names)
    settings.screen_pop_url = check_screen_pop_url(str(console.get("screen_pop_url") or ""))
    settings.screen_pop_window = _bool(console.get("screen_pop_window", False), "console.screen_pop_window", path)
    settings.disconnect_grace_ms = _duration(console.get("disconnect_grace", "15s"), "console.disconnect_grace", path)
    origins = console.get("origins") or []
    if not isinstance(origins, list) or not all(isinstance(o, str) and o.startswith(("http://", "https://"))
                                                for o in origins):
        raise UserError(f"{path}: console.origins must be a list of origins like https://ivr.example.com")
    settings.origins = tuple(o.rstrip("/") for o in origins)


def _records_db(cfg: ServeConfig, records: dict, base: Path, path) -> None:
    unknown = set(records) - {"dir", "database", "retention_days", "spool_dir", "transcripts", "recordings"}
    if unknown:
        raise UserError(f"{path}: unknown key records.{sorted(unknown)[0]}",
                        "records keys: dir, database, retention_days, spool_dir, transcripts, recordings")
    cfg.database_base = base
    if "database" in records:
        cfg.database = str(records["database"] or "")
    days = records.get("retention_days", 0)
    if isinstance(days, bool) or not isinstance(days, int | float) or days < 0:
        raise UserError(f"{path}: records.retention_days must be a number of days >= 0 (0 keeps records), "
                        f"not {days!r}")
    cfg.retention_days = float(days)
    if records.get("spool_dir"):
        cfg.spool_dir = base / str(records["spool_dir"])
    cfg.transcripts, cfg.transcripts_flows = _switch(records, "transcripts", True, path)
    cfg.recordings, cfg.recordings_flows = _switch(records, "recordings", False, path)
    if (cfg.recordings or any(cfg.recordings_flows.values())) and cfg.records_dir is None:
        raise UserError(f"{path}: records.recordings needs records.dir (the WAV files go under it)")


def _switch(records: dict, name: str, default: bool, path) -> tuple[bool, dict[str, bool]]:
    """records.transcripts / records.recordings: true/false or {default: BOOL, flows: {NAME: BOOL}}."""
    keep = records.get(name, default)
    if isinstance(keep, dict):
        flows = keep.get("flows") or {}
        if set(keep) - {"default", "flows"} or not isinstance(flows, dict):
            raise UserError(f"{path}: records.{name} must be true/false or {{default: {str(default).lower()}, "
                            f"flows: {{NAME: {str(not default).lower()}}}}}")
        return (_bool(keep.get("default", default), f"records.{name}.default", path),
                {str(k): _bool(v, f"records.{name}.flows.{k}", path) for k, v in flows.items()})
    return _bool(keep, f"records.{name}", path), {}


def _read(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"no such config file: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"{path}: does not parse: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: the config must be a mapping of sections (listen, flows, ...)")
    return data


def _section(data: dict, key: str, path) -> dict:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise UserError(f"{path}: '{key}' must be a mapping")
    return value


def _bool(value, what: str, path) -> bool:
    if isinstance(value, bool):
        return value
    raise UserError(f"{path}: {what} must be true or false, not {value!r}")


def _positive(value, what: str, path) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1 or isinstance(value, bool):
        raise UserError(f"{path or 'environment'}: {what} must be a whole number >= 1, not {value!r}")
    return number


def _duration(value, what: str, path) -> int:
    try:
        ms = parse_duration_ms(value)
    except DurationError as exc:
        raise UserError(f"{path}: {what} must be a duration with a unit, not {value!r}", exc.hint) from exc
    if ms <= 0:
        raise UserError(f"{path}: {what} must be longer than 0", "e.g. 30s, 10min or 1h")
    return ms
