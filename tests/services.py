"""Real servers for the tests, each on a free loopback port in a temporary directory."""
from __future__ import annotations

import contextlib
import getpass
import http.server
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class InfluxServer:
    url: str
    # With auth on (as deployed): the admin user every query of the tests runs as, unless given another.
    admin: dict[str, str] | None = None

    @property
    def credentials(self) -> dict[str, str]:
        """Keyword arguments that give an InfluxWriter the admin's credentials (none with auth off)."""
        return dict(self.admin) if self.admin else {}

    def query(self, q: str, db: str | None = None, **auth: str) -> list[dict]:
        params = {"q": q, "epoch": "s"}
        if db:
            params["db"] = db
        auth = auth or self.credentials
        if auth:
            params.update(u=auth["username"], p=auth["password"])
        response = requests.post(f"{self.url}/query", params=params, timeout=30)
        response.raise_for_status()
        result = response.json()["results"][0]
        if "error" in result:
            raise RuntimeError(result["error"])
        return result.get("series", [])

    def write(self, lines: list[str], db: str, precision: str = "s") -> None:
        params = {"db": db, "precision": precision}
        if self.admin:
            params.update(u=self.admin["username"], p=self.admin["password"])
        response = requests.post(f"{self.url}/write", params=params, data="\n".join(lines).encode(), timeout=60)
        assert response.status_code == 204, response.text

    def rows(self, q: str, db: str) -> list[dict]:
        """The query's points as dicts (column name -> value), across all series, tags included."""
        out = []
        for series in self.query(q, db):
            for values in series["values"]:
                row = dict(zip(series["columns"], values))
                row.update(series.get("tags", {}))
                out.append(row)
        return out


@contextlib.contextmanager
def influxdb(directory: Path, auth: bool = False, http_port: int | None = None,
             max_series: int | None = None, max_values_per_tag: int | None = None,
             index: str = "tsi1") -> Iterator[InfluxServer]:
    """Debian's influxd on free loopback ports with the tsi1 index (as the stack runs it); the cardinality limits
    lowered when asked, which InfluxDB 1.6 applies with the ``inmem`` index only."""
    http_port, rpc_port = http_port or free_port(), free_port()
    limits = "".join(f"\n  {key} = {value}" for key, value in (("max-series-per-database", max_series),
                                                             ("max-values-per-tag", max_values_per_tag)) if value)
    config = directory / "influxdb.conf"
    config.write_text(f"""
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{directory}/meta"
[data]
  dir = "{directory}/data"
  wal-dir = "{directory}/wal"
  index-version = "{index}"
  query-log-enabled = false{limits}
[http]
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = {'true' if auth else 'false'}
  log-enabled = false
  max-body-size = 0
[monitor]
  store-enabled = false
""")
    log = open(directory / "influxd.log", "wb")
    process = subprocess.Popen(["influxd", "-config", str(config)], stdout=log, stderr=log)
    server = InfluxServer(f"http://127.0.0.1:{http_port}")
    try:
        _wait_until(lambda: requests.get(f"{server.url}/ping", timeout=1).status_code == 204, process, "influxd")
        if auth:  # InfluxDB takes the first admin without credentials, then requires them
            server.query("CREATE USER admin WITH PASSWORD 'admin-secret' WITH ALL PRIVILEGES")
            server.admin = {"username": "admin", "password": "admin-secret"}
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@contextlib.contextmanager
def s3_server(directory: Path) -> Iterator[str]:
    """moto's S3-compatible server on a free loopback port (no S3 service runs on these machines: moto's server
    speaks S3's HTTP API, signatures included); yields its endpoint URL."""
    port = free_port()
    log = open(directory / "moto.log", "wb")
    process = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                               stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until(lambda: requests.get(url, timeout=1).status_code < 500, process, "moto_server")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def tls_material(directory: Path, name: str = "cluster", expired: bool = False) -> dict[str, Path]:
    """A CA and a server certificate it signs for 127.0.0.1 and localhost (one already expired when asked), as
    role tls makes them: files ``<name>-ca.crt``, ``<name>-server.crt`` and ``<name>-server.key`` in directory."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=2))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    valid_until = now - datetime.timedelta(hours=1) if expired else now + datetime.timedelta(days=1)
    server = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
              .issuer_name(ca_name).public_key(server_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(valid_until)
              .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                          x509.DNSName("localhost")]), critical=False)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .sign(ca_key, hashes.SHA256()))
    files = {"ca": directory / f"{name}-ca.crt", "cert": directory / f"{name}-server.crt",
             "key": directory / f"{name}-server.key"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    return files


REDIS_USERS = Path(__file__).resolve().parents[1] / "roles" / "stack" / "files" / "redis-users.conf"


def redis_acl(passwords: dict[str, str]) -> list[str]:
    """The stack's Redis users (roles/stack/files/redis-users.conf, as start-redis.sh renders it) with these
    passwords; the default user off."""
    lines = []
    for line in REDIS_USERS.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, rules = line.split(None, 1)
            lines.append(f"user {name} reset {rules}" if rules.startswith("off") else
                         f"user {name} reset on >{passwords[name]} {rules}")
    return lines


@contextlib.contextmanager
def redis_server(directory: Path, password: str | None = None, users: dict[str, str] | None = None,
                 tls: dict[str, Path] | None = None) -> Iterator[str]:
    """Debian's redis-server on a free loopback port; yields its URL (with the password, when one is set). With
    ``users`` (a password for each of the stack's Redis users), Redis has the stack's ACL users instead and the URL
    names the admin user. With ``tls`` (tls_material's files) it speaks TLS only, as the stack's does (rediss://)."""
    port = free_port()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
            "--save", "", "--appendonly", "no", "--logfile", str(directory / f"redis-{port}.log")]
    if tls:
        args[1:3] = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(tls["cert"]),
                     "--tls-key-file", str(tls["key"]), "--tls-ca-cert-file", str(tls["ca"]), "--tls-auth-clients", "no"]
    if password:
        args += ["--requirepass", password]
    if users:
        config = directory / f"redis-{port}.conf"
        config.write_text("\n".join(redis_acl(users)) + "\n")
        config.chmod(0o600)
        args = ["redis-server", str(config), *args[1:]]
    process = subprocess.Popen(args)
    auth = f"admin:{users['admin']}@" if users else f":{password}@" if password else ""
    url = f"{'rediss' if tls else 'redis'}://{auth}127.0.0.1:{port}/0"

    def answers() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True

    try:
        _wait_until(answers, process, "redis-server")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextlib.contextmanager
def nginx_server(root: Path, users: dict[str, str], uploads: bool = False, access_log: bool = False,
                 results_writers: tuple[str, ...] = (), tls: dict[str, Path] | None = None) -> Iterator[str]:
    """Debian's nginx on a free loopback port serving root to the given users (basic auth), taking PUT uploads
    under /models/ when asked, and, with results writers, the results store under /results/ as the stack's Nginx
    serves it (WebDAV PUT and DELETE for those users, JSON listings); yields its URL."""
    port = free_port()
    work = root.parent / f"nginx-{port}"
    work.mkdir()
    (work / "htpasswd").write_text("".join(f"{user}:{{PLAIN}}{secret}\n" for user, secret in users.items()))
    (work / "htpasswd-writers").write_text("".join(f"{user}:{{PLAIN}}{users[user]}\n" for user in results_writers))
    results = f"""location /results/ {{
      dav_methods PUT DELETE;
      create_full_put_path on;
      autoindex on;
      autoindex_format json;
      limit_except GET HEAD {{ auth_basic "CloudBurst results"; auth_basic_user_file {work}/htpasswd-writers; }}
    }}""" if results_writers else ""
    (work / "nginx.conf").write_text(f"""
daemon off;
user {getpass.getuser()};
pid {work}/nginx.pid;
error_log {work}/error.log;
events {{}}
http {{
  log_format bytes '$request_length $body_bytes_sent';
  access_log {f"{work}/access.log bytes" if access_log else "off"};
  client_max_body_size 2g;  # as the stack's Nginx: a batch's series file is megabytes
  client_body_temp_path {work}/body;
  proxy_temp_path {work}/proxy;
  fastcgi_temp_path {work}/fastcgi;
  uwsgi_temp_path {work}/uwsgi;
  scgi_temp_path {work}/scgi;
  server {{
    listen 127.0.0.1:{port}{" ssl" if tls else ""};
    {f"ssl_certificate {tls['cert']}; ssl_certificate_key {tls['key']};" if tls else ""}
    root {root};
    auth_basic "CloudBurst files";
    auth_basic_user_file {work}/htpasswd;
    {"location /models/ { dav_methods PUT; create_full_put_path on; }" if uploads else ""}
    {results}
  }}
}}
""")
    process = subprocess.Popen(["nginx", "-c", str(work / "nginx.conf"), "-p", str(work)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    try:
        verify = str(tls["ca"]) if tls else True
        _wait_until(lambda: requests.get(url, timeout=1, verify=verify).status_code in (401, 403, 404), process,
                    "nginx")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def file_server(directory: Path) -> Iterator[str]:
    """A plain HTTP server for model files (the engine's fetch path; Nginx serves them in a cluster)."""
    handler = lambda *args: _QuietHandler(*args, directory=str(directory))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _wait_until(ready, process: subprocess.Popen, name: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}")
        try:
            if ready():
                return
        except (requests.RequestException, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not answer within {timeout_s} s")
