"""Configuration: defaults, then SCRIPTBOX_* environment variables, validated at start.

This is the only module that reads the environment.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import limits
from cryptography.fernet import Fernet
from flask import Flask
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from app.instance import FILE_MODE, private_file, private_folder

DEFAULTS: dict[str, Any] = {
    # Database URL; the embedded default is a SQLite file in the instance folder.
    "DATABASE_URL": None,
    # Fernet keys for secrets at rest, newest first (comma-separated in the env).
    # Empty: a key file is generated once in the instance folder (mode 0600).
    "SECRET_KEYS": [],
    # Flask session signing key; generated into the instance folder when unset.
    "SECRET_KEY": None,
    # Public base URL used to build OAuth redirect URIs, e.g. https://scriptbox.example.com
    # None: LOCAL_PUBLIC_URL, or the address `scriptbox serve --host/--port` listens on.
    "PUBLIC_URL": None,
    # Origins allowed for `return_to` after connecting an account by API.
    "ALLOWED_RETURN_ORIGINS": [],
    # Where runs execute: "inprocess" (threads of the web process, the embedded default) or
    # "celery" (Celery workers; needs REDIS_URL, which also carries events and grant signals).
    "EXECUTOR": "inprocess",
    "IDLE_WORKERS": 4,
    # PYTHONHASHSEED of the sandbox's workers, one per installation so that set and dict
    # order is the same when a parked run resumes (DESIGN §4). None: derived from SECRET_KEY.
    "HASH_SEED": None,
    "RUN_WALL_TIME_S": 30.0,
    "RUN_CPU_TIME_S": 10,
    "RUN_MEMORY_MB": 256,
    "RUN_OUTPUT_BYTES": 256 * 1024,
    "RUN_RESULT_BYTES": 1024 * 1024,
    "RUN_MAX_CALLS": 200,
    "CALL_TIMEOUT_S": 30.0,
    "CALL_MAX_RESPONSE_BYTES": 10 * 1024 * 1024,
    "REFRESH_MARGIN_S": 30 * 60,
    "GRANT_TIMEOUT_S": 300,
    # Durable runs (DESIGN §4): a paused run keeps its worker this long, then parks;
    # beyond MAX_LIVE_PAUSED live pauses in one process, runs park at once.
    "PARK_AFTER_S": 10.0,
    "MAX_LIVE_PAUSED": 100,
    # How often a process renews its runs' heartbeat; three missed beats end them `interrupted`.
    "HEARTBEAT_S": 2.0,
    # Outbound webhooks: attempts per delivery, and the first retry's wait (doubling after).
    "WEBHOOK_MAX_ATTEMPTS": 8,
    "WEBHOOK_RETRY_BASE_S": 30.0,
    # Test events and redeliveries an admin may ask for in a moving window (the `limits`
    # notation), per endpoint and per facility: each makes the server send a request out.
    "WEBHOOK_SENDS_PER_ENDPOINT": "10 per minute",
    "WEBHOOK_SENDS_PER_FACILITY": "100 per hour",
    # Caps (DESIGN §6): live runs per user and per facility (more wait `queued`), open prompts.
    "MAX_RUNS_PER_USER": 10,
    "MAX_RUNS_PER_FACILITY": 50,
    "MAX_QUEUED_RUNS_PER_USER": 100,  # a user's runs waiting `queued`; past it one is refused
    "MAX_PENDING_GRANTS_PER_USER": 10,
    # Schedules per script and per facility (each fires runs on its own).
    "MAX_SCHEDULES_PER_SCRIPT": 10,
    "MAX_SCHEDULES_PER_FACILITY": 100,
    # Days a finished run (with its output, prompts and idempotency key) and a finished
    # webhook delivery are kept; older ones are deleted in the background. 0 keeps them.
    "RETENTION_DAYS": 90,
    # Redis for scale-out (Celery broker, event bus, grant signals), e.g. redis://host:6379/0.
    "REDIS_URL": None,
    # Private, loopback and LAN destinations the operator allows for outbound calls:
    # CIDRs with optional ports, e.g. "10.0.0.0/8, 127.0.0.1/32:8080, [fd00::/8]:443-444".
    # Empty: only public addresses. Link-local and cloud metadata stay refused regardless.
    "PRIVATE_NETWORK_ALLOW": (),
    # Largest request body; beyond it the answer is 413 before anything reads the body.
    "MAX_REQUEST_BYTES": 1024 * 1024,
    # Largest websocket message a page may send, and open websockets per user and process.
    "WS_MAX_MESSAGE_BYTES": 64 * 1024,
    "WS_MAX_CONNECTIONS_PER_USER": 20,
    # Requests one user, and everyone, may hold in a run's `wait` at once, per process (each
    # holds a server thread); past either a request is answered at once, the run going on.
    # None: half the threads of `scriptbox serve` (no total under --debug).
    "MAX_WAITING_REQUESTS_PER_USER": 4,
    "MAX_WAITING_REQUESTS": None,
    # How often an open websocket re-checks that its session and membership still stand.
    "WS_RECHECK_S": 5.0,
    # Sign-in attempts allowed in a moving window (the `limits` notation), per account
    # (the email typed) and per client address.
    "LOGIN_ATTEMPTS_PER_ACCOUNT": "10 per 5 minutes",
    "LOGIN_ATTEMPTS_PER_ADDRESS": "30 per 5 minutes",
    # Reverse proxies in front of the web processes whose X-Forwarded-For and
    # X-Forwarded-Proto are trusted (werkzeug's ProxyFix). 0: the client is the peer of
    # the socket. Set it to the number of proxies that append to X-Forwarded-For (a load
    # balancer alone: 1); more than there are lets clients pick their own address.
    "TRUSTED_PROXY_HOPS": 0,
    # Key prefix of everything Scriptbox keeps in Redis (several installations, one Redis).
    "REDIS_PREFIX": "scriptbox",
    # Database connections each process may hold (PostgreSQL; SQLite ignores them).
    "DATABASE_POOL_SIZE": 5,
    "DATABASE_MAX_OVERFLOW": 10,
    # Check every API answer against its declared model (a 500 where they differ). None:
    # under tests and --debug, where a difference is a bug to see at once; a server in
    # production answers with what the tests checked, without paying for it per request.
    "VALIDATE_RESPONSES": None,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    # The cookie is signed again only when the session changes, not on every response:
    # its server-side record expires at sign-in + lifetime whatever the cookie says, so
    # sliding the cookie's expiry bought nothing but a signature and a Set-Cookie per request.
    "SESSION_REFRESH_EACH_REQUEST": False,
}

_LIST_KEYS = ("SECRET_KEYS", "ALLOWED_RETURN_ORIGINS")
LOCAL_PUBLIC_URL = "http://127.0.0.1:5000"
# Hosts a server listens on that no browser opens (0.0.0.0 is "every address"; browsers
# refuse it): on this machine the server answers at loopback.
_WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}  # noqa: S104
EXECUTORS = ("inprocess", "celery")

# The databases Scriptbox runs on, as SQLAlchemy's (backend, driver): only these drivers are
# installed, and the migrations are written for these two databases.
DATABASES = frozenset({("sqlite", "pysqlite"), ("postgresql", "psycopg")})


# Values an example file or a tutorial puts in a secret's place (deploy/scaleout.env.example).
PLACEHOLDER_SECRETS = frozenset(
    {"change-me", "changeme", "change_me", "secret", "secret-key", "your-secret-key", "..."}
)


class ConfigError(ValueError):
    """The configuration cannot serve: the message names the setting to fix."""


# Never dialled, whatever PRIVATE_NETWORK_ALLOW says: link-local (where every cloud's
# metadata service lives), the other metadata addresses, "this host" (0.0.0.0 dials
# loopback), multicast and broadcast. Owned here so the operator's list is checked
# against it at start; app.integrations.transport enforces it on every connect.
NEVER_REACHABLE = tuple(
    ipaddress.ip_network(net)
    for net in (
        "169.254.0.0/16",
        "fe80::/10",
        "fd00:ec2::254/128",  # AWS instance metadata over IPv6
        "100.100.100.200/32",  # Alibaba Cloud metadata
        "0.0.0.0/8",
        "::/128",
        "224.0.0.0/4",
        "ff00::/8",
        "255.255.255.255/32",
    )
)


@dataclass(frozen=True)
class NetworkAllow:
    """One entry of PRIVATE_NETWORK_ALLOW: a network and, optionally, a port range."""

    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    ports: tuple[int, int] | None = None

    def covers(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> bool:
        """True when the address is in the network and the port in the range (if any)."""
        if address.version != self.network.version or address not in self.network:
            return False
        return self.ports is None or self.ports[0] <= port <= self.ports[1]

    def __str__(self) -> str:
        ports = "" if self.ports is None else f":{self.ports[0]}"
        if self.ports is not None and self.ports[1] != self.ports[0]:
            ports += f"-{self.ports[1]}"
        net = f"[{self.network}]" if ports and self.network.version == 6 else str(self.network)
        return net + ports


def parse_network_allow(value: Any) -> tuple[NetworkAllow, ...]:
    """PRIVATE_NETWORK_ALLOW as entries; a list, or text separated by commas or spaces."""
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    entries: list[NetworkAllow] = []
    for item in value or ():
        if isinstance(item, NetworkAllow):
            entries.append(item)
            continue
        entries.append(_network_entry(str(item).strip()))
    return tuple(entries)


def _network_entry(text: str) -> NetworkAllow:
    problem = ConfigError(
        f"SCRIPTBOX_PRIVATE_NETWORK_ALLOW: {text!r} is not a CIDR with an optional port or "
        "port range (10.0.0.0/8, 127.0.0.1/32:8080, [fd00::/8]:443)"
    )
    network_text, ports_text = text, ""
    if text.startswith("["):
        network_text, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise problem
        ports_text = rest[1:]
    elif text.count(":") == 1:
        network_text, _, ports_text = text.partition(":")
    try:
        network = ipaddress.ip_network(network_text, strict=False)
    except ValueError:
        raise problem from None
    ports: tuple[int, int] | None = None
    if ports_text:
        first, _, last = ports_text.partition("-")
        if not (first.isdigit() and (not last or last.isdigit())):
            raise problem
        ports = (int(first), int(last or first))
        if not 0 < ports[0] <= ports[1] <= 65535:
            raise problem
    return NetworkAllow(network, ports)


def load(app: Flask, test_config: dict[str, Any] | None = None) -> None:
    """Fill app.config from defaults, the environment and test_config, then validate."""
    app.config.from_mapping(DEFAULTS)
    if test_config is None:
        app.config.from_prefixed_env("SCRIPTBOX")
    else:
        app.config.from_mapping(test_config)
    for key in _LIST_KEYS:
        value = app.config.get(key)
        if isinstance(value, str):
            app.config[key] = [item.strip() for item in value.split(",") if item.strip()]
    app.config["PRIVATE_NETWORK_ALLOW"] = parse_network_allow(app.config["PRIVATE_NETWORK_ALLOW"])
    # Set after the environment is read, so only an unset PUBLIC_URL lets `serve` derive it
    # (an operator's http://127.0.0.1:5000 stays, whatever --host says).
    app.config["PUBLIC_URL_DERIVED"] = not app.config["PUBLIC_URL"]
    app.config["PUBLIC_URL"] = app.config["PUBLIC_URL"] or LOCAL_PUBLIC_URL
    if Path(app.instance_path).is_dir():
        private_folder(app.instance_path)  # an older install may have made it 0755
    if not app.config["DATABASE_URL"]:
        folder = private_folder(app.instance_path)
        app.config["DATABASE_URL"] = f"sqlite:///{folder / 'scriptbox.sqlite'}"
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = _instance_secret(Path(app.instance_path) / "session.key")
    if app.config["HASH_SEED"] is None:
        app.config["HASH_SEED"] = _derived_hash_seed(str(app.config["SECRET_KEY"]))
    app.config["SESSION_COOKIE_SECURE"] = str(app.config["PUBLIC_URL"]).startswith("https://")
    validate(app.config)
    # Werkzeug stops reading a body (also a chunked one) past Flask's MAX_CONTENT_LENGTH.
    app.config["MAX_CONTENT_LENGTH"] = int(app.config["MAX_REQUEST_BYTES"])
    app.config["SOCK_SERVER_OPTIONS"] = {
        "max_message_size": int(app.config["WS_MAX_MESSAGE_BYTES"])
    }


def _check_database_url(url: str) -> None:
    """Refuse a database URL Scriptbox cannot use (mysql:// was a driver's import traceback)."""
    got = ""  # the scheme only, never the password
    try:
        parsed = make_url(url)
        got = f" (not {parsed.drivername})"
        kind = (parsed.get_backend_name(), parsed.get_driver_name())
    except (ArgumentError, NoSuchModuleError):
        kind = None
    if kind not in DATABASES:
        raise ConfigError(
            f"SCRIPTBOX_DATABASE_URL must name SQLite or PostgreSQL{got}: "
            "sqlite:///path or postgresql+psycopg://user:password@host:port/db"
        )


def listening_url(host: str, port: int) -> str:
    """The URL a browser on this machine opens for a server listening on host:port."""
    host = _WILDCARD_HOSTS.get(host, host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    return f"http://{host}:{port}"


def _derived_hash_seed(secret_key: str) -> int:
    # Every process of an installation shares SECRET_KEY (sessions need it), so every
    # worker that may resume a run gets the same seed; the key itself is not revealed.
    digest = hmac.new(secret_key.encode(), b"scriptbox sandbox hash seed", "sha256").digest()
    return int.from_bytes(digest[:4], "big")


def _instance_secret(path: Path) -> str:
    private_folder(path.parent)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        with os.fdopen(fd, "w") as handle:
            handle.write(os.urandom(32).hex())
    private_file(path)
    return path.read_text().strip()


def validate(config: Any) -> None:
    """Refuse to start with settings that cannot work."""
    _check_database_url(str(config["DATABASE_URL"]))
    public = str(config["PUBLIC_URL"])
    if not public.startswith(("http://", "https://")) or public.endswith("/"):
        raise ConfigError(
            "SCRIPTBOX_PUBLIC_URL must be an absolute http(s) URL without a trailing /"
        )
    for entry in config["PRIVATE_NETWORK_ALLOW"]:
        for never in NEVER_REACHABLE:
            if entry.network.version == never.version and entry.network.subnet_of(never):
                raise ConfigError(
                    f"SCRIPTBOX_PRIVATE_NETWORK_ALLOW: {entry} lies in {never}, which is never "
                    "reachable (link-local, cloud metadata, this-host or multicast addresses)"
                )
    if str(config["SECRET_KEY"]).strip().lower() in PLACEHOLDER_SECRETS:
        # Sessions and the sandbox's hash seed hang on it: a copied example's value is public.
        raise ConfigError(
            "SCRIPTBOX_SECRET_KEY is a placeholder; make one with: python -c \"import secrets; "
            "print(secrets.token_hex(32))\""
        )
    for number, key in enumerate(config["SECRET_KEYS"], start=1):
        try:
            Fernet(key)
        except (TypeError, ValueError):
            raise ConfigError(
                f"SCRIPTBOX_SECRET_KEYS: key {number} is not a Fernet key (32 url-safe "
                "base64-encoded bytes); make one with: python -c \"from cryptography.fernet "
                "import Fernet; print(Fernet.generate_key().decode())\""
            ) from None
    if config["EXECUTOR"] not in EXECUTORS:
        raise ConfigError("SCRIPTBOX_EXECUTOR must be one of " + ", ".join(EXECUTORS))
    if config["EXECUTOR"] == "celery" and not str(config["REDIS_URL"] or "").startswith(
        ("redis://", "rediss://", "unix://")
    ):
        raise ConfigError("SCRIPTBOX_EXECUTOR=celery needs SCRIPTBOX_REDIS_URL=redis://host:port/db")
    seed = config["HASH_SEED"]
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= 4294967295:
        raise ConfigError("SCRIPTBOX_HASH_SEED must be an integer from 0 to 4294967295")
    for key in (
        "RUN_WALL_TIME_S",
        "RUN_CPU_TIME_S",
        "RUN_MEMORY_MB",
        "RUN_OUTPUT_BYTES",
        "RUN_RESULT_BYTES",
        "RUN_MAX_CALLS",
        "CALL_TIMEOUT_S",
        "GRANT_TIMEOUT_S",
        "IDLE_WORKERS",
        "HEARTBEAT_S",
        "WEBHOOK_MAX_ATTEMPTS",
        "WEBHOOK_RETRY_BASE_S",
        "MAX_LIVE_PAUSED",
        "MAX_RUNS_PER_USER",
        "MAX_RUNS_PER_FACILITY",
        "MAX_QUEUED_RUNS_PER_USER",
        "MAX_PENDING_GRANTS_PER_USER",
        "MAX_SCHEDULES_PER_SCRIPT",
        "MAX_SCHEDULES_PER_FACILITY",
        "MAX_REQUEST_BYTES",
        "WS_MAX_MESSAGE_BYTES",
        "WS_MAX_CONNECTIONS_PER_USER",
        "MAX_WAITING_REQUESTS_PER_USER",
        "WS_RECHECK_S",
        "DATABASE_POOL_SIZE",
    ):
        try:
            if float(config[key]) <= 0:
                raise ValueError
        except (TypeError, ValueError):
            raise ConfigError(f"SCRIPTBOX_{key} must be a positive number") from None
    waiting = config["MAX_WAITING_REQUESTS"]
    if waiting is not None and (isinstance(waiting, bool) or not isinstance(waiting, int)
                                or waiting <= 0):
        raise ConfigError("SCRIPTBOX_MAX_WAITING_REQUESTS must be a positive whole number")
    hops = config["TRUSTED_PROXY_HOPS"]
    if isinstance(hops, bool) or not isinstance(hops, int) or not 0 <= hops <= 10:
        raise ConfigError("SCRIPTBOX_TRUSTED_PROXY_HOPS must be an integer from 0 to 10")
    days = config["RETENTION_DAYS"]
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 36500:
        raise ConfigError(
            "SCRIPTBOX_RETENTION_DAYS must be a whole number of days (0 keeps everything)"
        )
    try:
        if float(config["PARK_AFTER_S"]) < 0:
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError("SCRIPTBOX_PARK_AFTER_S must be 0 or more seconds") from None
    for key in (
        "LOGIN_ATTEMPTS_PER_ACCOUNT",
        "LOGIN_ATTEMPTS_PER_ADDRESS",
        "WEBHOOK_SENDS_PER_ENDPOINT",
        "WEBHOOK_SENDS_PER_FACILITY",
    ):
        try:
            limits.parse(str(config[key]))
        except ValueError:
            raise ConfigError(
                f"SCRIPTBOX_{key} must read like '10 per 5 minutes'"
            ) from None
