"""CloudBurst worker container: keep the published analysis env installed and its RQ worker processes running.

Standard library only (the image has Python and nothing else). Every step is one log line.

- Reads the current env version from Nginx (``<files>/env/current``: the sha256 of that version's env.zip);
  with none published yet it waits with backoff and says so.
- Downloads ``env/<version>/env.zip``, checks its sha256 against the version, downloads the wheels its
  manifest lists (each sha256-checked; kept in a shared wheel cache) and installs them into a venv of its
  own with no index, with uv when the manifest ships its wheel (pip otherwise), then unpacks the wheels' bytecode
  compiled on the controller, when shipped, so the first import compiles nothing. An env is installed once per
  version: a restart on the same version installs nothing.
  A version that fails any check is refused with the reason, and the running version keeps serving.
- Runs ``CLOUDBURST_PROCESSES`` runner processes (0: one per CPU this container may use); each imports the
  env's module before it takes jobs (runner.py), and runs only the functions the env's manifest declares callable
  besides CloudBurst's own.
- When a new version is published, each process is asked to stop (SIGTERM: RQ finishes the job in hand,
  then exits) and is replaced by one on the new version, so no job is lost or run twice.
"""
from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

RUNNER = Path(__file__).with_name("runner.py")


def log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} cloudburst-worker {message}", flush=True)


class EnvRefused(RuntimeError):
    """A published env version this worker will not run; the message says why."""


@dataclass
class Settings:
    files_url: str
    home: Path
    processes: int
    poll_s: float
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None  # the cluster's CA: an https files_url is verified against it

    @classmethod
    def from_environment(cls) -> "Settings":
        env = os.environ.get
        password_file = env("CLOUDBURST_FILES_PASSWORD_FILE")
        processes = int(env("CLOUDBURST_PROCESSES", "0")) or len(os.sched_getaffinity(0))
        return cls(files_url=env("CLOUDBURST_FILES_URL", "http://nginx:8080").rstrip("/"),
                   home=Path(env("CLOUDBURST_HOME", "/var/lib/cloudburst")),
                   processes=processes,
                   poll_s=float(env("CLOUDBURST_POLL_S", "10")),
                   username=env("CLOUDBURST_FILES_USER"),
                   password=Path(password_file).read_text().strip() if password_file else None,
                   ca_file=env("CLOUDBURST_CA_FILE"))


class Files:
    """GETs from CloudBurst's Nginx, with its basic auth."""

    def __init__(self, settings: Settings):
        self.base = settings.files_url
        self.tls = ssl.create_default_context(cafile=settings.ca_file) if settings.ca_file else None
        self.headers = {}
        if settings.username:
            token = base64.b64encode(f"{settings.username}:{settings.password or ''}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"

    def get(self, path: str, timeout_s: float = 60) -> bytes:
        request = urllib.request.Request(f"{self.base}/{path}", headers=self.headers)
        with urllib.request.urlopen(request, timeout=timeout_s, context=self.tls) as response:
            return response.read()

    def current_version(self) -> str | None:
        try:
            version = self.get("env/current", timeout_s=10).decode().strip()
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise
        if len(version) != 64 or any(c not in "0123456789abcdef" for c in version):
            raise EnvRefused(f"env/current holds {version[:80]!r}, not a sha256 version")
        return version


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def install(version: str, files: Files, home: Path) -> Path:
    """The installed env directory for version (installing it first if needed); raises EnvRefused."""
    target = home / "envs" / version
    if (target / "ready").exists():
        log(f"env {version[:12]} already installed in {target}")
        return target
    started = time.monotonic()
    archive = files.get(f"env/{version}/env.zip")
    actual = sha256_of(archive)
    if actual != version:
        raise EnvRefused(f"env.zip of version {version[:12]} has sha256 {actual[:12]}: corrupt or altered")
    staging = Path(tempfile.mkdtemp(prefix=f"{version[:12]}-", dir=home / "envs"))
    try:
        code = staging / "code"
        zip_path = staging / "env.zip"
        zip_path.write_bytes(archive)
        with zipfile.ZipFile(zip_path) as env_zip:
            env_zip.extractall(code)
        manifest = json.loads((code / "cloudburst-manifest.json").read_text())
        wheels = fetch_wheels(manifest["wheels"], files, home / "wheels")
        installer = manifest.get("installer")
        if installer:
            build_venv_with_uv(uv_binary(home / "wheels" / installer, home / "tools"), staging / "venv",
                               code / manifest["requirements"], home)
        else:
            build_venv_with_pip(staging / "venv", code / manifest["requirements"], home)
        if "bytecode" in manifest:
            unpack_bytecode(home / "wheels" / manifest["bytecode"]["file"], manifest["bytecode"]["magic"],
                            staging / "venv")
        (staging / "ready").write_text(json.dumps({**manifest, "version": version}))
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    except (KeyError, ValueError, zipfile.BadZipFile, OSError, subprocess.CalledProcessError) as error:
        raise EnvRefused(f"env {version[:12]} cannot be installed: {type(error).__name__}: {error}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"env {version[:12]} installed ({len(wheels)} wheels, with {'uv' if installer else 'pip'}) in "
        f"{time.monotonic() - started:.1f} s")
    return target


def _installed(command: list[str], version_hint: str, env: dict[str, str] | None = None) -> None:
    completed = subprocess.run(command, capture_output=True, text=True, env=env)
    if completed.returncode != 0:
        raise EnvRefused(f"installing env {version_hint} failed: {' '.join(completed.stderr.split())[-400:]}")


def build_venv_with_pip(venv: Path, requirements: Path, home: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    _installed([str(venv / "bin" / "pip"), "install", "--quiet", "--no-index", "--no-cache-dir",
                "--disable-pip-version-check", "--find-links", str(home / "wheels"), "--require-hashes",
                "-r", str(requirements)], venv.parent.name.split("-")[0])


def uv_binary(wheel: Path, tools: Path) -> Path:
    """The uv executable inside its (sha256-checked) wheel, unpacked once per wheel."""
    binary = tools / wheel.stem / "uv"
    if not binary.exists():
        binary.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as archive:
            member = next(name for name in archive.namelist() if name.endswith(".data/scripts/uv"))
            part = binary.with_suffix(".part")
            part.write_bytes(archive.read(member))
        part.chmod(0o755)
        part.rename(binary)
    return binary


def build_venv_with_uv(uv: Path, venv: Path, requirements: Path, home: Path) -> None:
    """A venv of this Python with the locked wheels, by uv, offline. uv links files from its cache (on the same
    volume) instead of copying them and compiles no bytecode up front: most of pip's install time."""
    env = {**os.environ, "UV_CACHE_DIR": str(home / "uv-cache"), "UV_OFFLINE": "1", "UV_NO_CONFIG": "1",
           "UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1"}
    hint = venv.parent.name.split("-")[0]
    _installed([str(uv), "venv", "--quiet", "--python", sys.executable, str(venv)], hint, env)
    _installed([str(uv), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), "--no-index",
                "--find-links", str(home / "wheels"), "--require-hashes", "-r", str(requirements)], hint, env)


def unpack_bytecode(archive_path: Path, magic: str, venv: Path) -> None:
    """Put the bytecode compiled on the controller beside the venv's modules (each .pyc only where its module is
    installed); a Python with another magic number skips it and compiles on import."""
    if importlib.util.MAGIC_NUMBER.hex() != magic:
        log(f"bytecode {archive_path.name} is for another Python (magic {magic}): modules compile on first import")
        return
    site_packages = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    unpacked = 0
    with zipfile.ZipFile(archive_path) as archive:
        for entry in archive.infolist():
            path = PurePosixPath(entry.filename)
            if path.is_absolute() or ".." in path.parts or path.parent.name != "__pycache__":
                raise EnvRefused(f"bytecode archive {archive_path.name} holds {entry.filename!r}")
            source = site_packages / path.parent.parent / f"{path.name.split('.')[0]}.py"
            if source.exists():
                compiled = site_packages / path
                compiled.parent.mkdir(exist_ok=True)
                # Renamed into place: a .pyc a wheel shipped is a hard link into uv's cache, not to be written through.
                part = compiled.with_suffix(".part")
                part.write_bytes(archive.read(entry))
                part.replace(compiled)
                unpacked += 1
    log(f"bytecode for {unpacked} modules unpacked into the venv")


def fetch_wheels(wheels: list[dict], files: Files, cache: Path) -> list[Path]:
    cache.mkdir(parents=True, exist_ok=True)
    paths = []
    for wheel in wheels:
        name, expected = Path(wheel["file"]).name, wheel["sha256"]
        path = cache / name
        if not (path.exists() and sha256_of(path.read_bytes()) == expected):
            data = files.get(f"wheels/{name}")
            if sha256_of(data) != expected:
                raise EnvRefused(f"wheel {name} has sha256 {sha256_of(data)[:12]}, the manifest says {expected[:12]}")
            part = path.with_suffix(".part")
            part.write_bytes(data)
            part.rename(path)
        paths.append(path)
    return paths


@dataclass
class Slot:
    """One runner process and the env version it runs."""
    index: int
    version: str | None = None
    process: subprocess.Popen | None = None
    stopping: bool = False
    restarts: list[float] = field(default_factory=list)


class Supervisor:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.files = Files(settings)
        self.slots = [Slot(index) for index in range(settings.processes)]
        self.version: str | None = None
        self.env_dir: Path | None = None
        self.refused: dict[str, float] = {}
        self.shutting_down = False

    def start(self, slot: Slot) -> None:
        assert self.env_dir is not None and self.version is not None
        manifest = json.loads((self.env_dir / "ready").read_text())
        code = self.env_dir / "code"
        env = {**os.environ, "PYTHONPATH": str(code), "CLOUDBURST_PRELOAD": manifest.get("module", "worker"),
               "CLOUDBURST_ENV_MANIFEST": str(self.env_dir / "ready"),
               "CLOUDBURST_WORKER_NAME": f"{os.uname().nodename}.{self.version[:12]}.{slot.index}.{time.time_ns()}"}
        slot.process = subprocess.Popen([str(self.env_dir / "venv" / "bin" / "python"), str(RUNNER)], cwd=code, env=env)
        slot.version, slot.stopping = self.version, False
        log(f"process {slot.index} started on env {self.version[:12]} (pid {slot.process.pid})")

    def switch_to(self, version: str) -> None:
        if version in self.refused and time.monotonic() - self.refused[version] < 300:
            return
        try:
            env_dir = install(version, self.files, self.settings.home)
        except EnvRefused as refusal:
            self.refused[version] = time.monotonic()
            keeping = f"keeping env {self.version[:12]}" if self.version else "no env running"
            log(f"refused env {version[:12]}: {refusal}; {keeping}")
            return
        previous, self.version, self.env_dir = self.version, version, env_dir
        log(f"switching from env {previous[:12] if previous else 'none'} to {version[:12]}")
        for slot in self.slots:
            if slot.process is None:
                self.start(slot)
            elif slot.process.poll() is None:
                slot.process.send_signal(signal.SIGTERM)  # RQ's warm shutdown: the job in hand completes
                slot.stopping = True

    def tend(self) -> None:
        """Replace processes that exited: asked to stop (new version) or died."""
        for slot in self.slots:
            if slot.process is None or slot.process.poll() is None:
                continue
            code = slot.process.returncode
            if not slot.stopping:
                now = time.monotonic()
                slot.restarts = [t for t in slot.restarts if now - t < 60] + [now]
                log(f"process {slot.index} on env {(slot.version or '')[:12]} exited with {code}; restarting")
                if len(slot.restarts) > 5:
                    time.sleep(min(30.0, 2.0 ** (len(slot.restarts) - 5)))
            else:
                log(f"process {slot.index} finished its last job on env {(slot.version or '')[:12]}")
            if not self.shutting_down:
                self.start(slot)

    def stop(self, *_: object) -> None:
        self.shutting_down = True
        log("stopping: each process finishes the job in hand")
        for slot in self.slots:
            if slot.process is not None and slot.process.poll() is None:
                slot.process.send_signal(signal.SIGTERM)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        (self.settings.home / "envs").mkdir(parents=True, exist_ok=True)
        log(f"starting: {len(self.slots)} processes, env from {self.settings.files_url}/env/current")
        wait_s, next_poll = 1.0, 0.0
        while not self.shutting_down:
            if time.monotonic() >= next_poll:
                try:
                    version = self.files.current_version()
                except (OSError, EnvRefused) as error:
                    version = None
                    log(f"cannot read the current env from {self.settings.files_url}: {error}; retrying in {wait_s:.0f} s")
                else:
                    if version is None and self.version is None:
                        log(f"no env published yet at {self.settings.files_url}/env/current; "
                            f"waiting {wait_s:.0f} s (publish one with push-env.yml)")
                if version is not None:
                    wait_s = 1.0
                    if version != self.version:
                        self.switch_to(version)
                    next_poll = time.monotonic() + self.settings.poll_s
                else:
                    next_poll = time.monotonic() + wait_s
                    wait_s = min(wait_s * 2, 30.0)
            self.tend()
            time.sleep(0.5)
        for slot in self.slots:
            if slot.process is not None:
                slot.process.wait()
        log("stopped")
        return 0


if __name__ == "__main__":
    sys.exit(Supervisor(Settings.from_environment()).run())
