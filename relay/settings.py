"""Settings: a TOML file, ``RELAY_*`` environment overrides and a secrets directory, loaded once."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from relay.classify import DEFAULT_LOW_RATING_THRESHOLD, Category
from relay.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    # None: a random token is generated once and kept in <state_dir>/hook_token.
    hook_token: SecretStr | None = None
    max_body_bytes: int = Field(default=2_000_000, ge=1024)
    # Proxies whose X-Forwarded-For header is believed (CIDRs); empty: use the peer address.
    trusted_proxies: list[IPvAnyNetwork] = []
    # If set, only these CIDRs may post to the hook (others get 403, nothing is stored).
    hook_allowlist: list[IPvAnyNetwork] | None = None


class StorageSettings(_Section):
    state_dir: Path = Path("./var")
    retention_days: int = Field(default=90, ge=1)
    quarantine_max_rows: int = Field(default=1000, ge=1)


class SmtpSettings(_Section):
    # No host: emails are written to <state_dir>/outbox/ as .eml files instead.
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "none"
    username: str | None = None
    password: SecretStr | None = None
    from_address: str = "Smartsupp relay <relay@localhost>"
    timeout_seconds: float = Field(default=30.0, gt=0)

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return {"none": 25, "starttls": 587, "tls": 465}[self.security]


class SlackSettings(_Section):
    # Neither token nor webhook_url: Slack messages are written to <state_dir>/outbox/ as .json.
    token: SecretStr | None = None
    webhook_url: SecretStr | None = None
    api_url: str | None = None
    timeout_seconds: float = Field(default=30.0, gt=0)


class DeliverySettings(_Section):
    concurrency: int = Field(default=4, ge=1, le=64)
    backoff_initial_seconds: float = Field(default=1.0, gt=0)
    backoff_max_seconds: float = Field(default=900.0, gt=0)
    max_age_hours: float = Field(default=72.0, gt=0)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)


class ClassifySettings(_Section):
    low_rating_threshold: int = DEFAULT_LOW_RATING_THRESHOLD


class RenderSettings(_Section):
    locale: Literal["en", "cs", "de"] = "en"
    timezone: str = "UTC"
    templates_dir: Path | None = None


class HealthSettings(_Section):
    """What ``/readyz`` demands."""

    # Not ready while a delivery not yet sent or dead was planned longer ago than this.
    max_backlog_age_seconds: float = Field(default=900.0, gt=0)
    # The store's write probe (and the queue counts behind /metrics) must answer within this.
    probe_timeout_seconds: float = Field(default=5.0, gt=0)


class LoggingSettings(_Section):
    # "text": one human-readable line per event; "json": one JSON object per line.
    format: Literal["text", "json"] = "text"
    level: Literal["debug", "info", "warning", "error"] = "info"


class RoutingSettings(_Section):
    """Targets of the built-in rules used when no ``[[rules]]`` are configured."""

    sales_inbox: str = "sales@localhost"
    low_rating_channel: str = "#customer-feedback"


class Match(_Section):
    category: list[Category] | None = None
    rating_min: int | None = None
    rating_max: int | None = None
    account_id: list[int] | None = None


class EmailAction(_Section):
    type: Literal["email"]
    to: list[str] = Field(min_length=1)
    cc: list[str] = []
    bcc: list[str] = []
    template: str = "transcript"
    subject: str | None = None


class SlackAction(_Section):
    type: Literal["slack"]
    channel: str | None = None
    template: str = "alert"


Action = Annotated[EmailAction | SlackAction, Field(discriminator="type")]


class Rule(_Section):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(min_length=1)
    match: Match = Match()
    actions: list[Action] = Field(min_length=1)
    continue_: bool = Field(default=False, alias="continue")


def default_rules(routing: RoutingSettings) -> list[Rule]:
    return [
        Rule(
            name="missed-and-offline-to-sales",
            match=Match(category=[Category.MISSED, Category.OFFLINE]),
            actions=[EmailAction(type="email", to=[routing.sales_inbox])],
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
        secrets_prefix="",
        secrets_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    server: ServerSettings = ServerSettings()
    storage: StorageSettings = StorageSettings()
    smtp: SmtpSettings = SmtpSettings()
    slack: SlackSettings = SlackSettings()
    delivery: DeliverySettings = DeliverySettings()
    classify: ClassifySettings = ClassifySettings()
    render: RenderSettings = RenderSettings()
    routing: RoutingSettings = RoutingSettings()
    health: HealthSettings = HealthSettings()
    logging: LoggingSettings = LoggingSettings()
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

    @property
    def effective_rules(self) -> list[Rule]:
        return self.rules if self.rules is not None else default_rules(self.routing)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file arrives as init kwargs; environment and secrets override it.
        return (env_settings, NestedSecretsSettingsSource(file_secret_settings), init_settings)


def load_settings(
    path: Path | str | None = None, *, secrets_dir: Path | str | None = None
) -> Settings:
    """Read ``path`` (or ``$RELAY_CONFIG``), apply ``RELAY_*`` variables and secret files from
    ``secrets_dir`` (default ``$CREDENTIALS_DIRECTORY`` as set by systemd's LoadCredential)."""
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
    try:
        return Settings(**data, _secrets_dir=secrets)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, path)) from None


def describe_validation_error(exc: ValidationError, path: Path | str | None) -> str:
    where = f" in {path}" if path else ""
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"] if not str(part).startswith("function-"))
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{key}: {message}")
    return f"invalid settings{where}: " + "; ".join(lines)
