"""After side_effect force_update.yml: Redis and InfluxDB were replaced, their data was not."""
import redis
import requests
from stack_view import CA, MASTER, master_address, password, tasks

testinfra_hosts = [MASTER]


def test_redis_and_influxdb_tasks_were_replaced():
    for name in ("redis", "influxdb"):
        assert len(tasks(name, desired="shutdown")) == 1, f"{name} was not updated"


def test_redis_keeps_its_data_through_a_forced_update():
    client = redis.Redis(host=master_address(), port=6379, ssl=True, ssl_ca_certs=CA, username="admin", password=password("redis_password"))
    assert client.get("survivor") == b"still-here"


def test_influxdb_keeps_its_data_through_a_forced_update():
    read = requests.post(f"https://{master_address()}:8086/query",
                         params={"db": "cloudburst", "q": "SELECT count(value) FROM probe"},
                         auth=("cloudburst_reader", password("influxdb_read_password")), verify=CA, timeout=10)
    assert read.json()["results"][0]["series"][0]["values"][0][1] == 1
