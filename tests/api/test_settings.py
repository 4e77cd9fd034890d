"""client.toml as site.yml writes it: the cluster's CA beside it, named relative to the file or absolutely."""
from cloudburst.config import Settings

REQUIRED = {"redis_url": "rediss://m:6379/0", "redis_password": "p", "influx_url": "https://m:8086", "influx_user": "r",
            "influx_password": "p", "influx_db": "cloudburst", "files_url": "https://m:8080", "files_user": "u",
            "files_password": "p"}


def write(path, **values) -> None:
    path.write_text("".join(f'{key} = "{value}"\n' for key, value in {**REQUIRED, **values}.items()))


def test_a_relative_ca_file_is_the_one_beside_the_settings_file_and_an_absolute_one_is_kept(tmp_path, monkeypatch):
    monkeypatch.delenv("CLOUDBURST_CA_FILE", raising=False)
    config = tmp_path / "cluster" / "client.toml"
    config.parent.mkdir()
    write(config, ca_file="ca.crt", redis_user="submitter")
    settings = Settings.load(config)
    assert settings.ca_file == str(tmp_path / "cluster" / "ca.crt") and settings.redis_user == "submitter"
    write(config, ca_file="/etc/cloudburst/ca.crt")
    assert Settings.load(config).ca_file == "/etc/cloudburst/ca.crt"
    monkeypatch.setenv("CLOUDBURST_CA_FILE", "/elsewhere/ca.crt")
    assert Settings.load(config).ca_file == "/elsewhere/ca.crt"  # the variable overrides the file
