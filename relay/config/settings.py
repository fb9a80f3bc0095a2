"""Settings: a TOML file, ``RELAY_*`` environment overrides and a secrets directory, loaded once."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    IPvAnyNetwork,
    ModelWrapValidatorHandler,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from relay.config.addresses import Address, Addresses
from relay.config.credentials import CredentialsSource, undeclared_destinations
from relay.config.crm import (
    FreshdeskDestination,
    HubSpotDestination,
    PipedriveDestination,
    ZendeskDestination,
)
from relay.config.errors import describe_validation_error
from relay.config.presets import apply_preset
from relay.config.section import Section
from relay.console.settings import ConsoleSettings
from relay.leads.settings import FollowUpSettings
from relay.model.category import DEFAULT_LOW_RATING_THRESHOLD, Category
from relay.model.errors import ConfigError
from relay.model.urls import http_url
from relay.routing.rules import (
    Action,
    AnyAction,
    ArchiveAction,
    EmailAction,
    Match,
    Rule,
    RuleSet,
    SlackAction,
    TeamsAction,
    WebhookAction,
)

__all__ = [
    "Action",
    "AnyAction",
    "ArchiveAction",
    "EmailAction",
    "Match",
    "Rule",
    "RuleSet",
    "SlackAction",
    "TeamsAction",
    "WebhookAction",
    "describe_validation_error",
]


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    # None: a random token is generated once and kept in <state_dir>/hook_token.
    hook_token: SecretStr | None = None
    max_body_bytes: int = Field(default=2_000_000, ge=1024)
    # Proxies whose X-Forwarded-For header is believed (CIDRs); empty: use the peer address.
    trusted_proxies: list[IPvAnyNetwork] = []
    # If set, only these CIDRs may post to the hook (others get 403, nothing is stored).
    hook_allowlist: list[IPvAnyNetwork] | None = None
    # A connection must complete a request's headers within this many seconds, or is closed.
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    # ... and then its whole body within this many seconds, or is answered 408 and closed.
    body_timeout_seconds: float = Field(default=15.0, gt=0)
    # An idle keep-alive connection is closed after this many seconds.
    keep_alive_seconds: int = Field(default=5, ge=1)
    # A request arriving while this many connections are open (or requests in progress) gets 503.
    limit_concurrency: int = Field(default=900, ge=1)
    # Connections beyond this many are answered 503 and closed as soon as they are accepted.
    max_connections: int = Field(default=1000, ge=1)

    @model_validator(mode="after")
    def _concurrency_within_connections(self) -> ServerSettings:
        if self.limit_concurrency > self.max_connections:
            raise ValueError(
                f"limit_concurrency ({self.limit_concurrency}) must not exceed"
                f" max_connections ({self.max_connections})"
            )
        return self


class StorageSettings(Section):
    state_dir: Path = Path("./var")
    retention_days: int = Field(default=90, ge=1)
    quarantine_max_rows: int = Field(default=1000, ge=1)
    # The refused bodies kept, in bytes: beyond it the oldest entries are dropped (the newest
    # is kept, cut to this size if it is larger on its own).
    quarantine_max_bytes: int = Field(default=50_000_000, ge=1024)
    # Where conversations and the delivery queue are kept: absent or "sqlite:" for the SQLite
    # file <state_dir>/relay.db; "postgresql://user@host:5432/relay" for a PostgreSQL database
    # that several relays can share (docs/scaling.md). The password may be in the URL or in
    # ``password`` (the credentials file storage__password, or RELAY_STORAGE__PASSWORD).
    url: SecretStr | None = None
    password: SecretStr | None = None
    # PostgreSQL: how long a relay holds a delivery it claimed. If the relay dies, another one
    # takes the delivery once the lease expires; keep it longer than any send can take.
    lease_seconds: float = Field(default=300.0, gt=0)

    @field_validator("url")
    @classmethod
    def _known_engine(cls, url: SecretStr | None) -> SecretStr | None:
        value = None if url is None else url.get_secret_value().strip()
        if value is None or value in {"", "sqlite:"}:
            return None
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError('expected "sqlite:" or a "postgresql://..." URL')
        return SecretStr(value)


class SmtpSettings(Section):
    # No host: emails are written to <state_dir>/outbox/ as .eml files instead.
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "none"
    # PEM file of the CA(s) that signed the server's certificate (an internal CA);
    # None: the system's trust store. Certificates are always verified.
    ca_file: Path | None = None
    username: str | None = None
    password: SecretStr | None = None
    from_address: Address = "Smartsupp relay <relay@localhost>"
    timeout_seconds: float = Field(default=30.0, gt=0)
    # "oauth2": AUTH XOAUTH2 with an access token from the client-credentials grant at
    # oauth2_token_url; username is then the mailbox that sends (no password).
    auth: Literal["password", "oauth2"] = "password"
    oauth2_token_url: str | None = None
    oauth2_client_id: str | None = None
    oauth2_client_secret: SecretStr | None = None
    oauth2_scope: str | None = None
    # Google Workspace: the service account's JSON key (a credential file,
    # smtp__oauth2_service_account_key); tokens are then requested with a signed JWT acting as
    # `username` (domain-wide delegation) instead of a client id and secret.
    oauth2_service_account_key: SecretStr | None = None
    # "graph": submit the same MIME message with Microsoft Graph sendMail as graph_sender
    # (a mailbox of the tenant), with the OAuth2 settings above; host and port are unused.
    transport: Literal["smtp", "graph"] = "smtp"
    graph_sender: str | None = None
    graph_url: str = "https://graph.microsoft.com"
    # "m365" or "google" fill host, port, security, auth and the OAuth2 token URL and scope
    # that are not set (relay.config.presets); tenant: the Microsoft 365 directory (tenant) ID.
    provider: Literal["generic", "m365", "google"] = "generic"
    tenant: str | None = None
    _preset_filled: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _preset(cls, data: Any, handler: ModelWrapValidatorHandler[SmtpSettings]) -> SmtpSettings:
        filled: dict[str, Any] = {}
        if isinstance(data, Mapping):
            data, filled = apply_preset(data)
        settings = handler(data)
        settings._preset_filled = filled
        return settings

    @property
    def preset_filled(self) -> dict[str, Any]:
        """The settings ``provider`` filled in, with their values (``relay check`` shows them)."""
        return dict(self._preset_filled)

    @field_validator("oauth2_token_url", "graph_url")
    @classmethod
    def _token_http_url(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value)

    @model_validator(mode="after")
    def _graph_complete(self) -> SmtpSettings:
        if self.transport != "graph":
            return self
        if self.auth != "oauth2":
            raise ValueError('transport = "graph" needs auth = "oauth2"')
        if not self.graph_sender:
            raise ValueError('transport = "graph" needs graph_sender (the sending mailbox)')
        return self

    @model_validator(mode="after")
    def _oauth2_complete(self) -> SmtpSettings:
        if self.auth != "oauth2":
            return self
        needed = ["oauth2_token_url"]
        if self.oauth2_service_account_key is None:
            needed += ["oauth2_client_id", "oauth2_client_secret"]
        else:
            _service_account_key(self.oauth2_service_account_key)
        missing = [key for key in needed if getattr(self, key) is None]
        if missing:
            raise ValueError(f'auth = "oauth2" needs {", ".join(missing)}')
        if self.password is not None:
            raise ValueError('auth = "oauth2" logs in with a token: remove password')
        return self

    @model_validator(mode="after")
    def _can_work(self) -> SmtpSettings:
        """Combinations no server accepts, refused here rather than at the first delivery."""
        port, security = self.effective_port, self.security
        if port == 465 and security == "starttls":
            raise ValueError(
                'port 465 expects TLS from the first byte: use security = "tls" (or port 587)'
            )
        if port == 587 and security == "tls":
            raise ValueError(
                'port 587 expects STARTTLS: use security = "starttls" (or port 465 for "tls")'
            )
        # Without a host nothing logs in (the outbox is used), so only a used server must pair.
        password_login = self.auth == "password"
        if self.host and password_login and (self.username is None) != (self.password is None):
            given, missing = (
                ("username", "password")
                if self.password is None
                else (
                    "password",
                    "username",
                )
            )
            raise ValueError(f"{given} is set but {missing} is not: give both or neither")
        return self

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return {"none": 25, "starttls": 587, "tls": 465}[self.security]


def _service_account_key(key: SecretStr) -> None:
    """ValueError naming what is wrong with a service-account JSON key (never its content)."""
    from relay.senders.google_jwt import ServiceAccountKey  # noqa: PLC0415 -- CLI start-up

    ServiceAccountKey.from_json(key.get_secret_value())


class SlackSettings(Section):
    # Neither token nor webhook_url: Slack messages are written to <state_dir>/outbox/ as .json.
    token: SecretStr | None = None
    webhook_url: SecretStr | None = None
    api_url: str | None = None
    timeout_seconds: float = Field(default=30.0, gt=0)
    # Verifies the requests of Slack's interactivity (the Claim and Done buttons of leads).
    signing_secret: SecretStr | None = None


class TeamsSettings(Section):
    # A Teams Workflows "When a Teams webhook request is received" URL (it carries its own
    # signature, so it is a credential). None: cards are written to <state_dir>/outbox/.
    webhook_url: SecretStr | None = None
    timeout_seconds: float = Field(default=30.0, gt=0)


class DeliverySettings(Section):
    # Sends in flight at once; the worker holds up to twice as many deliveries (claimed and
    # rendered ahead of a free connection, or having their outcome recorded), on SQLite three
    # times as many and three more for each slot one destination may borrow, refilling a
    # destination a round of its slots at a time (relay.delivery.worker.claim_room).
    concurrency: int = Field(default=8, ge=1, le=64)
    # At most this many of those to one destination (SMTP server, Slack workspace, webhook),
    # so a slow one cannot take every slot: a hard cap. None: half of concurrency (at least 1)
    # as each destination's share, and idle slots lent up to concurrency - 1 while no send to
    # another destination waits (relay.delivery.slots; on PostgreSQL only where the lease
    # allows claims ahead). However it is set, destinations whose last send ran into its
    # deadline hold at most concurrency - 1.
    per_destination_concurrency: int | None = Field(default=None, ge=1, le=64)
    backoff_initial_seconds: float = Field(default=1.0, gt=0)
    backoff_max_seconds: float = Field(default=900.0, gt=0)
    max_age_hours: float = Field(default=72.0, gt=0)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    # Helper processes that render emails and Slack messages, so rendering uses another core
    # than intake and sending; 0 renders in the relay's own process.
    render_processes: int = Field(default=1, ge=0, le=16)
    # How much lower the helpers' CPU priority is than the relay's (nice(2)); 0: the same.
    # The hook's answers go first by yield_at_intakes below, whatever this is; a niceness
    # makes rendering give way to every other process as well (a mail server on the same
    # machine included), so deliveries wait whenever the CPU is short.
    render_niceness: int = Field(default=0, ge=0, le=19)
    # Intake first: while the store is busy with at least this many conversations (posted
    # and not answered yet, or written in its newest batch), the worker holds at most
    # yield_concurrency deliveries, so the hook's answers get the CPU and the disk; a backlog
    # then drains at full speed as soon as intake is quieter. 0: the worker never yields.
    yield_at_intakes: int = Field(default=16, ge=0)
    # Deliveries the worker holds (claimed, rendering, sending, being recorded) while it
    # yields: its floor, at most concurrency (a floor above it would not yield at all).
    yield_concurrency: int = Field(default=1, ge=1, le=64)
    # Deliveries the worker starts a second at most while it yields (its floor's pace): what
    # delivery keeps of the CPU, the store's thread and the disk while intake is busy. Once
    # intake is quieter, no pace.
    yield_per_second: float = Field(default=20.0, gt=0, le=10_000)

    @model_validator(mode="after")
    def _floor_within_concurrency(self) -> DeliverySettings:
        if self.yield_concurrency > self.concurrency:
            raise ValueError(
                f"yield_concurrency ({self.yield_concurrency}) must not exceed"
                f" concurrency ({self.concurrency}): it is what the worker holds while it"
                " yields to intake"
            )
        return self


class ClassifySettings(Section):
    low_rating_threshold: int = DEFAULT_LOW_RATING_THRESHOLD


class RenderSettings(Section):
    locale: Literal["en", "cs", "de"] = "en"
    timezone: str = "UTC"
    templates_dir: Path | None = None
    # An email or Slack message shows at most this many of the newest messages, with a note
    # counting the earlier ones (the whole conversation stays in the store).
    max_messages: int = Field(default=300, ge=1, le=100_000)
    # An email larger than this is rendered again with fewer and shorter messages.
    max_email_bytes: int = Field(default=1_000_000, ge=200_000)
    # The HTML part stays under this (Gmail clips at about 102 KB); earlier messages are left
    # out of it and the whole transcript is attached.
    max_html_bytes: int = Field(default=100_000, ge=20_000)
    # "Open in Smartsupp" link: an http(s) URL with {chat_id}, {account_id} and {visitor_id}
    # placeholders; no link when unset.
    conversation_url: str | None = None


class HealthSettings(Section):
    """What ``/readyz`` demands."""

    # Not ready while a delivery not yet sent or dead was planned longer ago than this.
    max_backlog_age_seconds: float = Field(default=900.0, gt=0)
    # The store's write probe (and the queue counts behind /metrics) must answer within this.
    probe_timeout_seconds: float = Field(default=5.0, gt=0)


class LoggingSettings(Section):
    # "text": one human-readable line per event; "json": one JSON object per line.
    format: Literal["text", "json"] = "text"
    level: Literal["debug", "info", "warning", "error"] = "info"


def _drop_is_empty(value: Any) -> Any:
    if isinstance(value, str):
        if value != "drop":
            raise ValueError(f'use "drop" or a list of actions, got {value!r}')
        return []
    return value


class RoutingSettings(Section):
    """Targets of the built-in rules used when no ``[[rules]]`` are configured, and what
    happens to a conversation no rule matches: ``"drop"`` (stored, logged, nothing sent) or a
    list of actions (``[[routing.fallback]]`` tables) planned under the rule name "fallback"."""

    # One address or a list; "user@localhost" mails a local mailbox of the SMTP server.
    sales_inbox: Addresses = ["sales@localhost"]
    low_rating_channel: str = "#customer-feedback"
    fallback: Annotated[list[Action], BeforeValidator(_drop_is_empty)] = []


class WebhookDestination(Section):
    """A named HTTP endpoint. With ``secret``, every POST carries
    ``<signature_header>: sha256=<hex HMAC-SHA256 of the body>``."""

    url: str
    secret: SecretStr | None = None
    signature_header: str = "X-Relay-Signature-256"
    headers: dict[str, str] = {}
    timeout_seconds: float = Field(default=10.0, gt=0)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value)

    @field_validator("headers")
    @classmethod
    def _header_safe(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not name or any(c in name + text for c in "\r\n\0") or ":" in name:
                raise ValueError(f"header {name!r} has an invalid name or value")
        return value


class DestinationSettings(Section):
    """Named destinations that actions pick with ``destination = "NAME"``."""

    smtp: dict[str, SmtpSettings] = {}
    slack: dict[str, SlackSettings] = {}
    webhook: dict[str, WebhookDestination] = {}
    hubspot: dict[str, HubSpotDestination] = {}
    pipedrive: dict[str, PipedriveDestination] = {}
    freshdesk: dict[str, FreshdeskDestination] = {}
    zendesk: dict[str, ZendeskDestination] = {}
    teams: dict[str, TeamsSettings] = {}


def default_rules(routing: RoutingSettings) -> list[Rule]:
    return [
        Rule(
            name="missed-and-offline-to-sales",
            match=Match(category=[Category.MISSED, Category.OFFLINE]),
            actions=[EmailAction(type="email", to=list(routing.sales_inbox))],
        ),
        Rule(
            name="low-rated-to-slack",
            match=Match(category=[Category.LOW_RATED]),
            actions=[SlackAction(type="slack", channel=routing.low_rating_channel)],
        ),
    ]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RELAY_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    server: ServerSettings = ServerSettings()
    storage: StorageSettings = StorageSettings()
    smtp: SmtpSettings = SmtpSettings()
    slack: SlackSettings = SlackSettings()
    teams: TeamsSettings = TeamsSettings()
    delivery: DeliverySettings = DeliverySettings()
    classify: ClassifySettings = ClassifySettings()
    render: RenderSettings = RenderSettings()
    routing: RoutingSettings = RoutingSettings()
    health: HealthSettings = HealthSettings()
    logging: LoggingSettings = LoggingSettings()
    destinations: DestinationSettings = DestinationSettings()
    follow_up: FollowUpSettings = FollowUpSettings()
    console: ConsoleSettings = ConsoleSettings()
    rules: list[Rule] | None = None

    @field_validator("rules")
    @classmethod
    def _unique_rule_names(cls, rules: list[Rule] | None) -> list[Rule] | None:
        seen: set[str] = set()
        for rule in rules or ():
            if rule.name in seen:
                raise ValueError(f"rule name {rule.name!r} is used twice")
            seen.add(rule.name)
        return rules

    @model_validator(mode="after")
    def _destinations_exist(self) -> Settings:
        problems = [
            f"{where}: unknown {kind} destination {name!r} (known: {', '.join(known) or 'none'})"
            for where, kind, name, known in self._destination_references()
            if name not in known
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _destination_references(self) -> Iterator[tuple[str, str, str, list[str]]]:
        named: dict[str, dict[str, Any]] = {
            "email": self.destinations.smtp,
            "slack": self.destinations.slack,
            "webhook": self.destinations.webhook,
            "hubspot": self.destinations.hubspot,
            "pipedrive": self.destinations.pipedrive,
            "freshdesk": self.destinations.freshdesk,
            "zendesk": self.destinations.zendesk,
            "teams": self.destinations.teams,
        }
        for where, action in self.actions_by_place():
            name = getattr(action, "destination", None)
            if name is not None:
                kind = {"email": "smtp"}.get(action.type, action.type)
                yield f"{where}.destination", kind, name, sorted(named[action.type])

    def actions_by_place(self) -> Iterator[tuple[str, AnyAction]]:
        """Every configured action with where it is: "rule 'x': actions.0" or the fallback."""
        for rule in self.effective_rules:
            for index, action in enumerate(rule.actions):
                yield f"rule {rule.name!r}: actions.{index}", action
        for index, action in enumerate(self.routing.fallback):
            yield f"routing.fallback.{index}", action

    @property
    def effective_rules(self) -> list[Rule]:
        return self.rules if self.rules is not None else default_rules(self.routing)

    @property
    def rule_set(self) -> RuleSet:
        return RuleSet(tuple(self.effective_rules), tuple(self.routing.fallback))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file arrives as init kwargs; secret files override it, the environment
        # overrides both. Secret files: relay.config.credentials (any setting, at any depth).
        secrets_dir = getattr(file_secret_settings, "secrets_dir", None)
        directory = None if secrets_dir is None else Path(secrets_dir)
        return (env_settings, CredentialsSource(settings_cls, directory), init_settings)


def load_settings(
    path: Path | str | None = None, *, secrets_dir: Path | str | None = None
) -> Settings:
    """Read ``path`` (or ``$RELAY_CONFIG``), apply ``RELAY_*`` variables and secret files from
    ``secrets_dir`` (default ``$CREDENTIALS_DIRECTORY`` as set by systemd's LoadCredential):
    one file per setting, named by its path, e.g. ``destinations__smtp__billing__password``."""
    path = path or os.environ.get("RELAY_CONFIG") or None
    data: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {file} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {file} cannot be read: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {file} is not valid TOML: {exc}") from None
    secrets = secrets_dir or os.environ.get("CREDENTIALS_DIRECTORY") or None
    if secrets is not None:
        declared = data.get("destinations")
        problems = undeclared_destinations(
            Path(secrets), declared if isinstance(declared, dict) else {}
        )
        if problems:
            where = f" in {path}" if path else ""
            raise ConfigError(f"invalid settings{where}: " + "; ".join(problems))
    try:
        return Settings(**data, _secrets_dir=secrets)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, path, data)) from None
