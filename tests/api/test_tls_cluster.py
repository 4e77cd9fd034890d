"""The client over TLS, as site.yml sets it up (rediss:// and https:// with the cluster's CA beside client.toml),
against a real Redis and Nginx speaking TLS only: it works with the cluster's CA, and a server whose certificate
that CA did not sign, or whose certificate has expired, is refused with one sentence naming the server and the CA."""
import cloudburst
import pytest
from cloudburst.config import Settings
from cloudburst.errors import ServiceError
from local_cluster import REDIS_PASSWORDS, REPO, cli
from services import nginx_server, redis_server, tls_material

pytestmark = pytest.mark.services
NET3_MODEL = REPO / "files" / "models" / "Net3.inp"


@pytest.fixture
def tls_cluster(tmp_path, influx):
    cluster_ca = tls_material(tmp_path, "cluster")
    expired = tls_material(tmp_path, "expired", expired=True)
    other = tls_material(tmp_path, "other")
    (tmp_path / "files" / "models").mkdir(parents=True)
    db = f"tls_{tmp_path.name[-20:].replace('-', '_')}"
    influx.query(f"CREATE DATABASE {db}")
    influx.query(f"CREATE USER reader_{db} WITH PASSWORD 'reader-secret'")
    influx.query(f"GRANT READ ON {db} TO reader_{db}")
    with redis_server(tmp_path, users=REDIS_PASSWORDS, tls=cluster_ca) as redis_url, \
            redis_server(tmp_path, users=REDIS_PASSWORDS, tls=expired) as expired_url, \
            nginx_server(tmp_path / "files", {"uploader": "uploader-secret"}, uploads=True, tls=cluster_ca) as files:
        plain = redis_url.replace(f"admin:{REDIS_PASSWORDS['admin']}@", "")
        env = {"CLOUDBURST_REDIS_URL": plain, "CLOUDBURST_REDIS_USER": "submitter",
               "CLOUDBURST_REDIS_PASSWORD": REDIS_PASSWORDS["submitter"], "CLOUDBURST_INFLUX_URL": influx.url,
               "CLOUDBURST_INFLUX_USER": f"reader_{db}", "CLOUDBURST_INFLUX_PASSWORD": "reader-secret",
               "CLOUDBURST_INFLUX_DB": db,
               "CLOUDBURST_FILES_URL": files, "CLOUDBURST_FILES_USER": "uploader",
               "CLOUDBURST_FILES_PASSWORD": "uploader-secret", "CLOUDBURST_CA_FILE": str(cluster_ca["ca"]),
               "CLOUDBURST_CONFIG": str(tmp_path / "no-such-client.toml")}
        yield {"env": env, "ca": cluster_ca["ca"], "other_ca": other["ca"], "redis_url": plain,
               "expired_url": expired_url.replace(f"admin:{REDIS_PASSWORDS['admin']}@", ""), "expired_ca": expired["ca"],
               "files": files}


def with_env(cluster: dict, **changes: str) -> dict:
    return {"env": {**cluster["env"], **changes}}


def test_with_the_clusters_ca_the_client_uses_redis_and_nginx_over_tls(tls_cluster):
    listed = cli(tls_cluster, "list")
    assert listed.returncode == 0, listed.stderr
    uploaded = cli(tls_cluster, "upload", str(NET3_MODEL))
    assert uploaded.returncode == 0 and len(uploaded.stdout.strip()) == 64, uploaded.stderr


def test_a_server_whose_certificate_another_ca_signed_is_refused_naming_the_server_and_the_ca(tls_cluster):
    other = str(tls_cluster["other_ca"])
    refused = cli(with_env(tls_cluster, CLOUDBURST_CA_FILE=other), "list")
    assert refused.returncode == 3
    assert refused.stderr.strip() == (
        f"cloudburst: Redis at {tls_cluster['redis_url']} presents a certificate that the CA in {other} does not "
        "vouch for (self-signed certificate in certificate chain): is ca_file this cluster's CA (site.yml writes it "
        "beside client.toml)?")
    settings = Settings(**{key.removeprefix("CLOUDBURST_").lower(): value for key, value in tls_cluster["env"].items()
                           if key != "CLOUDBURST_CONFIG"} | {"ca_file": other})
    with pytest.raises(ServiceError) as upload:
        cloudburst.Client(settings, check=False).upload(NET3_MODEL)  # Nginx alone
    assert str(upload.value).startswith(f"Nginx at {tls_cluster['files']} presents a certificate that the CA in "
                                        f"{other} does not vouch for (unable to get local issuer certificate)")
    without = cli(with_env(tls_cluster, CLOUDBURST_CA_FILE=""), "list")
    assert without.returncode == 3 and "the system's CAs (no ca_file set) does not vouch for" in without.stderr


def test_an_expired_certificate_is_refused_with_a_sentence(tls_cluster):
    refused = cli(with_env(tls_cluster, CLOUDBURST_REDIS_URL=tls_cluster["expired_url"],
                           CLOUDBURST_CA_FILE=str(tls_cluster["expired_ca"])), "list")
    assert refused.returncode == 3
    assert "presents a certificate that the CA in" in refused.stderr and "(certificate has expired)" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_an_ensemble_and_a_task_set_run_end_to_end_over_tls(tmp_path, influx):
    from local_cluster import local_cluster, start_workers, stop
    with local_cluster(tmp_path, influx, tls=True) as cluster:
        assert cluster["env"]["CLOUDBURST_REDIS_URL"].startswith("rediss://")
        assert cluster["env"]["CLOUDBURST_FILES_URL"].startswith("https://")
        scenario = tmp_path / "small.yml"
        scenario.write_text((REPO / "files" / "scenarios" / "net3-demand-roughness.yml").read_text()
                            .replace("members: 200", "members: 12"))
        workers = start_workers(cluster)
        try:
            done = cli(cluster, "submit", str(NET3_MODEL), str(scenario), "--name", "over-tls", "--wait")
            assert done.returncode == 0, done.stderr
            uploaded = cli(cluster, "upload", str(NET3_MODEL)).stdout.strip()
            tasks = tmp_path / "tasks.jsonl"
            tasks.write_text("".join(f'{{"model": "{uploaded}", "demand_factor": {0.9 + i / 10}}}\n' for i in range(3)))
            ran = cli(cluster, "tasks", "submit", "worker:lowest_pressure", str(tasks), "--name", "tls-tasks", "--wait")
            assert ran.returncode == 0, ran.stderr
        finally:
            stop(workers)
        status = cli(cluster, "status", "over-tls")
        assert status.returncode == 0 and "finished 12  failed 0" in status.stdout, status.stdout
        tasks_status = cli(cluster, "tasks", "status", "tls-tasks")
        assert "tasks 3  finished 3  failed 0" in tasks_status.stdout, tasks_status.stdout
