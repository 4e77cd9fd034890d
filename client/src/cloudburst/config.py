"""Where the client finds CloudBurst: Redis, InfluxDB and Nginx endpoints and credentials.

Read from ``~/.config/cloudburst/client.toml`` (site.yml writes it on the controller, mode 0600, outside the
repository; ``CLOUDBURST_CONFIG`` names another file), each value overridable by an environment variable
``CLOUDBURST_<KEY>`` (e.g. ``CLOUDBURST_REDIS_URL``).
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import MISSING, dataclass, fields
from pathlib import Path

DEFAULT_PATH = Path.home() / ".config" / "cloudburst" / "client.toml"


class ConfigError(RuntimeError):
    pass


@dataclass(frozen=True)
class Settings:
    redis_url: str                 # redis://host:6379/0
    redis_password: str
    influx_url: str                # http://host:8086
    influx_user: str               # the read-only user
    influx_password: str
    influx_db: str
    files_url: str                 # Nginx as the client reaches it: http://host:8080
    files_user: str                # the uploader
    files_password: str
    cluster_files_url: str = "http://nginx:8080"  # Nginx as the workers reach it (job model URLs)
    queue: str = "cloudburst"

    @classmethod
    def load(cls, path: Path | None = None) -> "Settings":
        path = Path(os.environ.get("CLOUDBURST_CONFIG", path or DEFAULT_PATH))
        values: dict[str, str] = {}
        if path.exists():
            try:
                values = {key: str(value) for key, value in tomllib.loads(path.read_text()).items()}
            except tomllib.TOMLDecodeError as error:
                raise ConfigError(f"{path} is not valid TOML: {error}") from None
        for field in fields(cls):
            override = os.environ.get(f"CLOUDBURST_{field.name.upper()}")
            if override is not None:
                values[field.name] = override
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{path} has unknown settings: {', '.join(unknown)}")
        missing = [field.name for field in fields(cls) if field.default is MISSING and field.name not in values]
        if missing:
            where = f"{path}" if path.exists() else f"{path} (missing: run site.yml, which writes it)"
            raise ConfigError(f"no {', '.join(missing)} in {where} or CLOUDBURST_* variables")
        return cls(**values)
