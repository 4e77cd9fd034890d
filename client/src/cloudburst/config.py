"""Where the client finds CloudBurst: Redis, InfluxDB and Nginx endpoints and credentials.

Read from ``~/.config/cloudburst/client.toml`` (site.yml writes it on the controller, mode 0600, outside the
repository; ``CLOUDBURST_CONFIG`` names another file), each value overridable by an environment variable
``CLOUDBURST_<KEY>`` (e.g. ``CLOUDBURST_REDIS_URL``). One file can describe several clusters: the top-level
keys are the default profile, each ``[profiles.NAME]`` table another cluster (its keys over the top-level
ones), chosen with ``--profile NAME`` or ``CLOUDBURST_PROFILE``.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

from cloudburst.errors import ConfigError

DEFAULT_PATH = Path.home() / ".config" / "cloudburst" / "client.toml"
PROFILES_TABLE = "profiles"


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
    cluster_files_url: str = "https://nginx:8080"  # Nginx as the workers reach it (job model URLs)
    queue: str = "cloudburst"
    retention_days: str = "0"      # `cloudburst prune` deletes ensembles created longer ago (0: keep them all)
    results_url: str = ""          # the results store: default files_url + /results; or s3://bucket/prefix
    results_user: str = ""         # its user, or an S3 access key (default: files_user)
    results_password: str = ""     # its password, or an S3 secret key (default: files_password)
    results_endpoint: str = ""     # an S3-compatible store's endpoint URL (default: AWS)
    redis_user: str = ""           # Redis's ACL user (site.yml writes "submitter"); empty: the password-only default
    ca_file: str = ""              # the cluster's CA (site.yml writes ca.crt beside client.toml): rediss:// and
                                   # https:// servers are verified against it; a relative path is the file's own dir

    @classmethod
    def load(cls, path: Path | None = None, profile: str | None = None) -> "Settings":
        path = Path(os.environ.get("CLOUDBURST_CONFIG", path or DEFAULT_PATH))
        profile = profile or os.environ.get("CLOUDBURST_PROFILE") or None
        document: dict[str, Any] = {}
        if path.exists():
            try:
                document = tomllib.loads(path.read_text())
            except tomllib.TOMLDecodeError as error:
                raise ConfigError(f"{path} is not valid TOML: {error}") from None
        profiles = document.pop(PROFILES_TABLE, {})
        values = {key: str(value) for key, value in document.items()}
        if profile is not None:
            if profile not in profiles:
                known = ", ".join(sorted(profiles)) or "none"
                raise ConfigError(f"{path} has no profile {profile!r} (profiles: {known})")
            values.update({key: str(value) for key, value in profiles[profile].items()})
        if values.get("ca_file") and not Path(values["ca_file"]).expanduser().is_absolute():
            values["ca_file"] = str(path.parent / values["ca_file"])  # beside the file that names it
        for field in fields(cls):
            override = os.environ.get(f"CLOUDBURST_{field.name.upper()}")
            if override is not None:
                values[field.name] = override
        where = f"{path}" + (f" [profiles.{profile}]" if profile else "")
        unknown = sorted(set(values) - {field.name for field in fields(cls)})
        if unknown:
            raise ConfigError(f"{where} has unknown settings: {', '.join(unknown)}")
        missing = [field.name for field in fields(cls) if field.default is MISSING and field.name not in values]
        if missing:
            hint = "" if path.exists() else " (missing: run site.yml, which writes it)"
            raise ConfigError(f"no {', '.join(missing)} in {where}{hint} or CLOUDBURST_* variables")
        return cls(**values)
