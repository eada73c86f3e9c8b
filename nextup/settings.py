"""Settings from the environment (a TOML file may set the same keys).

``NEXTUP_DATABASE_URL``, ``NEXTUP_MQTT_URL``, ``NEXTUP_SITE``,
``NEXTUP_DEVICE_ID``, ``NEXTUP_PRINTER``, ``NEXTUP_PUBLIC_URL``,
``NEXTUP_INSTANCE``, ``NEXTUP_CENTRAL_ID``.  The environment wins over the file.

``central_id`` is central's MQTT client id (default ``central-<site>``): the
broker keeps central's session, and the requests queued in it while central is
down, under that id, so it must stay the same across restarts; each central
instance sharing a site's traffic needs its own.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from central.domain.errors import NextupError

DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"


class SettingsError(NextupError, ValueError):
    code = "bad_settings"


@dataclass(frozen=True)
class MqttUrl:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False

    @classmethod
    def parse(cls, url: str) -> MqttUrl:
        """``mqtt://user:pass@host:port`` or ``mqtts://...`` (TLS, port 8883 by default)."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise SettingsError(f"MQTT URL {_redact(url)!r} must start with mqtt:// or mqtts://")
        if not parts.hostname:
            raise SettingsError(f"MQTT URL {_redact(url)!r} has no host")
        tls = parts.scheme == "mqtts"
        try:
            port = parts.port
        except ValueError:
            raise SettingsError(f"MQTT URL {_redact(url)!r} has a bad port") from None
        if port == 0:
            raise SettingsError(f"MQTT URL {_redact(url)!r} has a bad port")
        port = port or (8883 if tls else 1883)
        return cls(
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
        )

    def __repr__(self) -> str:  # never print a password
        return f"MqttUrl(host={self.host!r}, port={self.port}, username={self.username!r}, tls={self.tls})"


@dataclass(frozen=True)
class Settings:
    site: str = "main"
    database_url: str = ""
    mqtt_url: str = DEFAULT_MQTT_URL
    device_id: str | None = None
    printer: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    instance: str = "instance"
    central_id: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # the URLs may carry passwords: never print them
        shown = ", ".join(
            f"{f.name}={_redact(v) if f.name.endswith('_url') and isinstance(v, str) else v!r}"
            for f in fields(self)
            for v in [getattr(self, f.name)]
        )
        return f"Settings({shown})"

    @property
    def mqtt(self) -> MqttUrl:
        return MqttUrl.parse(self.mqtt_url)

    @property
    def database(self) -> str:
        """The database URL; by default a SQLite file in the instance folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{Path(self.instance).resolve() / 'nextup.sqlite3'}"


def _redact(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


_ENV = {f.name: f"NEXTUP_{f.name.upper()}" for f in fields(Settings) if f.name != "extra"}


def load(config: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``config`` (TOML: the keys above; others kept in ``extra``) and the environment."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    if config is not None:
        try:
            with open(config, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise SettingsError(f"cannot read {config}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{config}: {exc}") from None
        for key, value in data.items():
            if key in _ENV and not isinstance(value, str):
                raise SettingsError(f"{config}: {key} must be a string, not {type(value).__name__}")
            (values if key in _ENV else extra)[key] = value
    for name, var in _ENV.items():
        if env.get(var):
            values[name] = env[var]
    settings = replace(Settings(), **values, extra=extra)
    settings.mqtt  # noqa: B018 - fail early on a bad URL
    return settings
