"""Settings, built once at the CLI edge and injected everywhere else.

Precedence, lowest first: defaults < TOML config file < .env < FAPIAO_* environment < CLI flags.
A TOML file may hold several accounts:

    portal_url = "https://dppt.beijing.chinatax.gov.cn:8443"
    sso_url = "https://tpass.beijing.chinatax.gov.cn:8443"
    out = "~/invoices"

    [accounts.acme]
    company_id = "91110108MA01ABCDE1"
    login = "13800000001"
    password_command = "pass show tax/acme"   # or password = "...", or password_keyring = "fapiao:acme"
    sms = "prompt"                             # prompt | command:<cmd> | file:<path> | mock-outbox:<portal url>
    role = "办税员"

An accounting firm names persons instead: one login each, for several companies (switched after one login):

    [persons.zhou]
    login = "13900000001"
    password_command = "pass show tax/zhou"
    sms = "file:~/sms/zhou.txt"
    companies = ["91110108MA01ABCDE1", "91310000MA1FL0000X"]   # or "all" with login_company = "<tax id>"
"""

from __future__ import annotations

import difflib
import shlex
import subprocess
import tomllib
from collections.abc import Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from agent.archive import DEFAULT_LAYOUT, validate_layout
from agent.errors import SettingsError
from agent.parsers.ids import is_valid_taxpayer_id
from agent.records import Direction, FileFormat

SMS_SOURCE_KINDS = ("prompt", "command", "file", "mock-outbox")
CAPTCHA_SOLVER_KINDS = ("prompt", "command", "ocr")

_config_file: ContextVar[Path | None] = ContextVar("fapiao_config_file", default=None)
_secrets: set[str] = set()  # every password this process has seen, so that no report of ours can hold one


def remember_secret(secret: SecretStr | None) -> None:
    if secret is not None and secret.get_secret_value():
        _secrets.add(secret.get_secret_value())


def redact(text: str) -> str:
    """`text` with every password this process has seen replaced by asterisks (the longest first)."""
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, "********")
    return text


def _parsable_command(command: str) -> str:
    """A command line as a shell would split it; ValueError (a configuration error) when it cannot be."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise ValueError(f"cannot be parsed as a command ({exc}); check its quotes") from None
    if not words:
        raise ValueError("is an empty command")
    return command


def _source_kind(value: str, allowed: tuple[str, ...], setting: str) -> str:
    kind, _, argument = value.partition(":")
    if kind not in allowed:
        raise ValueError(f"{setting} must start with one of {', '.join(allowed)} (got {value!r})")
    if kind == "command":
        _parsable_command(argument)
    return value


def _company_id(value: str) -> str:
    value = value.strip().upper()
    if not is_valid_taxpayer_id(value):
        raise ValueError(f"{value!r} is not a valid unified social credit code (check its 18th character)")
    return value


class Account(BaseModel):
    """One person's login to one company."""

    model_config = ConfigDict(extra="forbid")  # a typo (`rol`, `pasword`) must not be silently ignored

    company_id: str = Field(description="统一社会信用代码/纳税人识别号 of the company")
    login: str = Field(description="居民身份证号码/手机号码/用户名 of the person")
    password: SecretStr | None = None
    password_command: str | None = Field(None, description="a command whose first output line is the password")
    password_keyring: str | None = Field(None, description="service:username in the system keyring")
    sms: str = Field("prompt", description="where SMS codes come from: " + " | ".join(SMS_SOURCE_KINDS))
    role: str | None = Field(None, description="role to pick when the person has several, e.g. 办税员")

    @field_validator("company_id")
    @classmethod
    def _valid_company_id(cls, value: str) -> str:
        return _company_id(value)

    @field_validator("sms")
    @classmethod
    def _known_sms_source(cls, value: str) -> str:
        return _source_kind(value, SMS_SOURCE_KINDS, "sms")

    @field_validator("password_command")
    @classmethod
    def _parsable_password_command(cls, value: str | None) -> str | None:
        return None if value is None else _parsable_command(value)

    @model_validator(mode="after")
    def _one_password_source(self) -> Account:
        sources = [s for s in (self.password, self.password_command, self.password_keyring) if s]
        if len(sources) > 1:
            raise ValueError("give only one of password, password_command, password_keyring")
        remember_secret(self.password)
        return self

    def resolve_password(self, name: str) -> SecretStr:
        """The password from wherever the account keeps it; the error never contains it."""
        if self.password is not None:
            return self.password
        if self.password_command:
            password = SecretStr(_run_password_command(self.password_command, name))
        elif self.password_keyring:
            password = SecretStr(_keyring_password(self.password_keyring, name))
        else:
            raise SettingsError(
                f"account {name!r} has no password: set FAPIAO_PASSWORD, or password_command / password_keyring "
                "in the config file"
            )
        remember_secret(password)
        return password


def _run_password_command(command: str, name: str) -> str:
    try:
        result = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        raise SettingsError(f"password_command of account {name!r} failed ({type(exc).__name__}); run it by hand to see why") from None
    password = result.stdout.splitlines()[0] if result.stdout else ""
    if not password:
        raise SettingsError(f"password_command of account {name!r} printed nothing")
    return password


def _keyring_password(reference: str, name: str) -> str:
    try:
        import keyring  # optional: only for users who keep passwords there
    except ImportError:
        raise SettingsError("password_keyring needs the keyring package: pip install 'fapiao-agent[keyring]'") from None
    service, _, username = reference.partition(":")
    password = keyring.get_password(service, username or name)
    if not password:
        raise SettingsError(f"no password in the keyring for service {service!r}, user {username or name!r}")
    return password


class Person(BaseModel):
    """One person's login (an accountant, 办税员 for several companies) and the companies archived with it: the
    person logs in once, then switches from company to company without another password or SMS."""

    model_config = ConfigDict(extra="forbid")  # a typo must not be silently ignored

    login: str = Field(description="居民身份证号码/手机号码/用户名 of the person")
    password: SecretStr | None = None
    password_command: str | None = Field(None, description="a command whose first output line is the password")
    password_keyring: str | None = Field(None, description="service:username in the system keyring")
    sms: str = Field("prompt", description="where the person's SMS codes come from: " + " | ".join(SMS_SOURCE_KINDS))
    captcha: str | None = Field(None, description="image captcha solver for this person; default: the top-level captcha")
    region: str = Field("", description="the portal region the person's session lives in; default: portal_url's host")
    role: str | None = Field(None, description="role to pick at login when the person has several, e.g. 办税员")
    companies: list[str] | Literal["all"] = Field(
        description='the companies to archive: tax ids, or "all" = every company the portal links to the person'
    )
    login_company: str | None = Field(None, description="company id typed at login; default: the first of `companies`")

    @field_validator("companies")
    @classmethod
    def _valid_companies(cls, value: list[str] | str) -> list[str] | str:
        if value == "all":
            return value
        if not value:
            raise ValueError('name at least one company (tax id), or "all"')
        return list(dict.fromkeys(_company_id(company) for company in value))

    @field_validator("login_company")
    @classmethod
    def _valid_login_company(cls, value: str | None) -> str | None:
        return None if value is None else _company_id(value)

    @field_validator("captcha")
    @classmethod
    def _known_captcha_solver(cls, value: str | None) -> str | None:
        return None if value is None else _source_kind(value, CAPTCHA_SOLVER_KINDS, "captcha")

    @model_validator(mode="after")
    def _can_log_in(self) -> Person:
        if self.companies == "all" and self.login_company is None:
            raise ValueError('companies = "all" needs login_company: the company id typed at login')
        self.login_account()  # login, password sources and sms checked as an account's are
        return self

    def login_account(self) -> Account:
        """The account the login form is filled with: the person, with the company typed at login."""
        first = self.login_company or (self.companies[0] if isinstance(self.companies, list) else "")
        return Account(
            company_id=first, login=self.login, password=self.password, password_command=self.password_command,
            password_keyring=self.password_keyring, sms=self.sms, role=self.role,
        )

    @classmethod
    def of_account(cls, account: Account) -> Person:
        """An [accounts.x] entry: one person, one company."""
        return cls(
            login=account.login, password=account.password, password_command=account.password_command,
            password_keyring=account.password_keyring, sms=account.sms, role=account.role,
            companies=[account.company_id], login_company=account.company_id,
        )


class Schedule(BaseModel):
    """A run the queue starts by itself (`fapiao worker` enqueues it when the cron line matches, local time)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("", description="a name for the status page and logs; default: the cron line")
    cron: str = Field(description="minute hour day month day-of-week, e.g. '0 2 3 * *' = on the 3rd at 02:00")
    persons: list[str] | Literal["all"] = Field("all", description="person names from [persons.*], or 'all'")
    period: Literal["last-month", "this-month"] = Field("last-month", description="which month the run archives")
    directions: list[Direction] = Field([Direction.issued, Direction.received], description="issued, received")

    @field_validator("cron")
    @classmethod
    def _five_cron_fields(cls, value: str) -> str:
        from huey import crontab  # the queue's own cron reader, so that what is accepted here is what runs

        fields = value.split()
        if len(fields) != 5:
            raise ValueError(f"cron {value!r} needs 5 fields: minute hour day month day-of-week")
        try:
            crontab(*fields, strict=True)
        except ValueError as exc:
            raise ValueError(f"cron {value!r}: {exc}") from None
        return " ".join(fields)


class Settings(BaseSettings):
    """Every knob of the agent. Environment variables are FAPIAO_<NAME>; nested ones use __."""

    model_config = SettingsConfigDict(
        env_prefix="FAPIAO_", env_file=".env", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    # Portal
    portal_url: str = Field("https://dppt.beijing.chinatax.gov.cn:8443", description="invoice platform base URL")
    sso_url: str = Field("", description="login (tpass) base URL; empty = same as portal_url")
    max_range_days: int = Field(31, ge=1, le=366, description="longest 开票日期 range the portal accepts in one query")
    insecure: bool = Field(False, description="accept invalid TLS certificates (never the default)")

    # Accounts: from the config file, or a single one from FAPIAO_COMPANY_ID / FAPIAO_LOGIN / FAPIAO_PASSWORD
    accounts: dict[str, Account] = Field(default_factory=dict)
    persons: dict[str, Person] = Field(
        default_factory=dict, description="[persons.<name>]: one login each, for several companies (accounts work too)"
    )
    max_persons: int = Field(2, ge=1, le=16, description="persons archived at once, each on its own browser context")
    company_id: str | None = None
    login: str | None = None
    password: SecretStr | None = None
    sms: str = "prompt"
    role: str | None = None

    # Human checks
    interactive: bool | None = Field(None, description="ask on the terminal; default: when stdin is a terminal")
    captcha: str = Field("prompt", description="image captcha solver: " + " | ".join(CAPTCHA_SOLVER_KINDS))
    human_timeout: float = Field(300, gt=0, description="seconds to wait for an SMS code or captcha answer")

    # Archive
    out: Path = Field(Path("archive"), description="archive root: files, ledger.sqlite3, manifests")
    layout: str = Field(DEFAULT_LAYOUT, description="file path template inside the archive")
    formats: list[FileFormat] = Field([FileFormat.pdf], description="pdf, xml, ofd")
    database_url: str | None = Field(
        None,
        description="the ledger in PostgreSQL, shared by workers on several machines (out is then a shared mount): "
        "postgresql+psycopg://USER:PASSWORD@HOST/DATABASE; default: ledger.sqlite3 in out",
    )

    # Downloads
    concurrency: int = Field(1, ge=1, le=64, description="downloads in flight at once (1: one call at a time, as public clients do)")
    rate_limit: float = Field(10.0, ge=0, description="max portal requests per second (0 = no limit), on top of the pause")
    pause: float = Field(
        0.5, ge=0, description="seconds between two portal requests (file fetch, listing query), at least; 0 = none"
    )
    pause_jitter: float = Field(
        0.5, ge=0, description="up to this many seconds more between two requests, at random (default pace: 0.5-1 s)"
    )
    timeout: float = Field(30.0, gt=0, description="seconds per portal request")
    retries: int = Field(5, ge=1, le=20, description="attempts per request for transient errors")
    backoff_max: float = Field(30.0, gt=0, description="longest wait between retries, seconds")
    corrupt_retries: int = Field(3, ge=1, le=10, description="downloads of a file that keeps arriving corrupt")
    not_ready_rounds: int = Field(2, ge=0, le=10, description="end-of-run rounds for files not ready yet")
    not_ready_wait: float = Field(5.0, ge=0, description="seconds before each such round")
    unavailable_wait: float = Field(120.0, ge=0, description="longest wait for maintenance to end before exit 5")
    verify_qr: bool = Field(True, description="cross-check the QR payload of each PDF")
    workers: int = Field(0, ge=0, description="verification processes (0 = one per core)")
    max_file_mb: int = Field(20, ge=1, le=2048, description="largest file accepted, MB; a larger one is corrupt")

    # Browser
    browser_path: Path | None = Field(None, description="Chromium executable; default: Playwright's, then PATH")
    headless: bool = True
    state_dir: Path = Field(Path("~/.local/state/fapiao"), description="saved sessions (mode 0600)")
    debug_dir: Path | None = Field(None, description="traces and screenshots of failed runs; default <out>/_debug")

    # Queue, schedules and notifications (fapiao enqueue / fapiao worker)
    queue_url: str | None = Field(
        None, description="redis://host:6379/0 for workers on several machines; unset: a SQLite queue in <out>/queue.sqlite3"
    )
    queue_lease_seconds: float = Field(
        60, ge=1, le=3600, description="a worker's hold on a person lasts this long unless renewed (a dead worker's ends)"
    )
    queue_retries: int = Field(3, ge=0, le=20, description="later attempts of a task the portal was down for (never a refused login)")
    queue_retry_wait: float = Field(300, ge=0, description="seconds before the first later attempt; doubled for each one after")
    schedules: list[Schedule] = Field(default_factory=list, description="[[schedules]]: runs the workers start by themselves")
    notify: list[str] = Field(
        default_factory=list, description="apprise URLs told when a person is needed or a run ends badly: mailto://, json://, ..."
    )

    # The status page (fapiao serve)
    web_token: SecretStr | None = Field(
        None,
        description="the status page's access token; needed to listen beyond loopback (unset: a new one at each start)",
    )

    @field_validator("layout")
    @classmethod
    def _valid_layout(cls, value: str) -> str:
        try:
            validate_layout(value)
        except SettingsError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("captcha")
    @classmethod
    def _known_captcha_solver(cls, value: str) -> str:
        return _source_kind(value, CAPTCHA_SOLVER_KINDS, "captcha")

    @field_validator("web_token")
    @classmethod
    def _long_web_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("use at least 16 characters, e.g. python -c 'import secrets; print(secrets.token_urlsafe())'")
        return value

    @field_validator("sms")
    @classmethod
    def _known_sms_source(cls, value: str) -> str:
        return _source_kind(value, SMS_SOURCE_KINDS, "sms")

    @field_validator("portal_url", "sso_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (or http:// for a local mock portal)")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _postgresql_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("postgresql", "postgresql+psycopg", "postgres"):
            raise ValueError("must be a PostgreSQL URL: postgresql+psycopg://USER:PASSWORD@HOST/DATABASE")
        remember_secret(SecretStr(parts.password or ""))  # redacted from every report, as passwords are
        return value

    @field_validator("out", "state_dir", "debug_dir", "browser_path")
    @classmethod
    def _expand_home(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @field_validator("formats", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return [part.strip().lower() for part in value.split(",") if part.strip()] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _remember_password(self) -> Settings:
        remember_secret(self.password)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = _config_file.get()
        toml = ConfigFileSource(settings_cls, toml_file=config_file) if config_file else TomlConfigSettingsSource(settings_cls)
        return init_settings, env_settings, dotenv_settings, toml

    def account_names(self) -> list[str]:
        return list(self.accounts) or (["default"] if self.company_id else [])

    def account(self, name: str | None) -> tuple[str, Account]:
        """The named account, or the only one; a clear SettingsError otherwise."""
        accounts = dict(self.accounts)
        if self.company_id and self.login:
            accounts.setdefault("default", self._account_from_flat_settings())
        if not accounts:
            raise SettingsError(
                "no account configured: set FAPIAO_COMPANY_ID, FAPIAO_LOGIN and FAPIAO_PASSWORD, "
                "or add [accounts.<name>] to the config file (--config)"
            )
        if name is None:
            if len(accounts) > 1:
                raise SettingsError(f"several accounts configured; choose one with --account ({', '.join(accounts)})")
            name = next(iter(accounts))
        if name not in accounts:
            raise SettingsError(f"unknown account {name!r}; configured: {', '.join(accounts)}")
        return name, accounts[name]

    @model_validator(mode="after")
    def _persons_and_accounts_apart(self) -> Settings:
        both = sorted(set(self.persons) & set(self.accounts))
        if both:
            raise ValueError(f"{', '.join(both)}: named both in [persons] and in [accounts]; rename one")
        return self

    def all_persons(self) -> dict[str, Person]:
        """[persons.*], and each account (the flat FAPIAO_COMPANY_ID one too) as a person of one company."""
        accounts = dict(self.accounts)
        if self.company_id and self.login:
            accounts.setdefault("default", self._account_from_flat_settings())
        return {**self.persons, **{name: Person.of_account(account) for name, account in accounts.items()}}

    def person(self, name: str | None) -> tuple[str, Person]:
        """The named person (or account), or the only one; a clear SettingsError otherwise."""
        persons = self.all_persons()
        if not persons:
            raise SettingsError("no person configured: add [persons.<name>] (or [accounts.<name>]) to the config file (--config)")
        if name is None and len(persons) > 1:
            raise SettingsError(f"several persons configured; choose one with --person ({', '.join(persons)})")
        name = name or next(iter(persons))
        if name not in persons:
            raise SettingsError(f"unknown person {name!r}; configured: {', '.join(persons)}")
        return name, persons[name]

    def region_of(self, person: Person) -> str:
        """The region a person's session lives in: theirs, else the portal's host (one live session per region)."""
        return person.region or urlsplit(self.portal_url).hostname or self.portal_url

    def _account_from_flat_settings(self) -> Account:
        try:
            return Account(
                company_id=self.company_id or "", login=self.login or "", password=self.password, sms=self.sms, role=self.role
            )
        except ValidationError as exc:
            raise settings_error(exc, "FAPIAO_") from None


def settings_error(exc: ValidationError, prefix: str = "") -> SettingsError:
    """One line per bad setting: where it is set and what is wrong with it."""
    lines = []
    for error in exc.errors():
        if error["type"] == "extra_forbidden":
            lines.append(unknown_key(error["loc"], prefix))
            continue
        name = ".".join(str(part) for part in error["loc"]) or "settings"
        lines.append(f"setting {prefix}{name}: {error['msg'].removeprefix('Value error, ')}")
    return SettingsError("bad settings:\n  " + "\n  ".join(lines))


SECTION_MODELS: dict[str, type[BaseModel]] = {"accounts": Account, "persons": Person}  # [<section>.<name>] tables


def unknown_key(loc: Sequence[int | str], prefix: str = "") -> str:
    """`accounts.acme: unknown key 'rol' — did you mean 'role'?`: the valid name nearest to a typo."""
    *parents, key = [str(part) for part in loc]
    section = SECTION_MODELS.get(parents[0]) if len(parents) == 2 else None
    valid = section.model_fields if section is not None else Settings.model_fields
    where = f"{prefix}{'.'.join(parents)}" if parents else "top level"
    nearest = difflib.get_close_matches(key, list(valid), n=1)
    advice = f" — did you mean {nearest[0]!r}?" if nearest else f"; valid keys: {', '.join(valid)}"
    return f"{where}: unknown key {key!r}{advice}"


FOLDER_FIELDS = ("out", "state_dir", "debug_dir", "browser_path")  # paths a config file names relative to itself


class ConfigFileSource(TomlConfigSettingsSource):
    """The config file, whose relative paths are relative to the file's own folder: a schedule runs from
    anywhere (cron starts in /), and `out = "books"` must mean the same folder however it is started. Paths
    from flags and the environment stay relative to the working directory, as a shell's are."""

    def __init__(self, settings_cls: type[BaseSettings], toml_file: Path) -> None:
        super().__init__(settings_cls, toml_file=toml_file)
        self.folder = toml_file.parent

    def __call__(self) -> dict[str, Any]:
        values = super().__call__()
        for name in FOLDER_FIELDS:
            if isinstance(values.get(name), str) and not Path(values[name]).expanduser().is_absolute():
                values[name] = str(self.folder / values[name])
        return values


def _check_toml(path: Path) -> None:
    """A config file that is not valid TOML: its name, and the line and column where reading stopped."""
    try:
        tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise SettingsError(f"config file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise SettingsError(f"cannot read config file {path}: {exc.strerror}") from None


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build Settings once; CLI flags come in as overrides (None means 'not given')."""
    if config_file is not None and not config_file.is_file():
        raise SettingsError(f"config file {config_file} does not exist; pass an existing file to --config")
    if config_file is not None:
        _check_toml(config_file)
    token = _config_file.set(config_file)
    try:
        return Settings(**{key: value for key, value in overrides.items() if value is not None})
    except ValidationError as exc:
        raise settings_error(exc) from None
    except (ValueError, OSError) as exc:  # e.g. a malformed .env
        raise SettingsError(f"cannot read settings: {exc}") from None
    finally:
        _config_file.reset(token)
