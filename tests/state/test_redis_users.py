"""The stack's Redis users (roles/stack/files/redis-users.conf) on a real Redis: what each role is refused."""
import subprocess

import pytest
import redis
from local_cluster import REDIS_PASSWORDS
from services import redis_server
from waiting import wait_until

pytestmark = pytest.mark.services

REFUSED_TO_ALL_BUT_ADMIN = [("FLUSHALL",), ("FLUSHDB",), ("CONFIG", "GET", "requirepass"), ("CONFIG", "SET", "dir", "/tmp"),
                            ("KEYS", "*"), ("ACL", "LIST"), ("ACL", "SETUSER", "intruder", "on"),
                            ("SHUTDOWN",), ("SAVE",), ("CLIENT", "KILL", "ID", "1"), ("REPLICAOF", "127.0.0.1", "1")]


@pytest.fixture(scope="module")
def users(tmp_path_factory):
    with redis_server(tmp_path_factory.mktemp("acl"), users=REDIS_PASSWORDS) as url:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        yield {user: redis.Redis(port=port, username=user, password=secret)
               for user, secret in REDIS_PASSWORDS.items()} | {"port": port}


@pytest.mark.parametrize("user", ["submitter", "worker", "dashboard", "reader"])
def test_no_user_but_admin_may_flush_configure_debug_list_keys_or_change_acls(users, user):
    for command in REFUSED_TO_ALL_BUT_ADMIN:
        with pytest.raises(redis.exceptions.NoPermissionError):
            users[user].execute_command(*command)
    with pytest.raises(redis.exceptions.ResponseError, match="DEBUG command not allowed|no permissions"):
        users[user].execute_command("DEBUG", "SLEEP", "0")  # Redis 7 refuses DEBUG to every remote user too
    assert users["admin"].acl_getuser("intruder") is None  # nothing of the refused SETUSER happened
    assert users["admin"].config_get("dir")["dir"] != "/tmp"


def test_clients_and_workers_touch_cloudburst_s_and_rq_s_keys_only(users):
    for user in ("submitter", "worker"):
        assert users[user].set(f"cloudburst:probe:{user}", 1) and users[user].rpush(f"rq:probe:{user}", 1)
        with pytest.raises(redis.exceptions.NoPermissionError):
            users[user].set("elsewhere", 1)
        with pytest.raises(redis.exceptions.NoPermissionError):
            users[user].get("elsewhere")
        with pytest.raises(redis.exceptions.NoPermissionError):  # a script's keys are checked too
            users[user].eval("return redis.call('SET', KEYS[1], 1)", 1, "elsewhere")
    assert users["admin"].exists("elsewhere") == 0


def test_only_workers_hear_rq_s_worker_commands_and_a_submitter_cannot_send_them(users):
    with pytest.raises(redis.exceptions.NoPermissionError):
        users["submitter"].publish("rq:pubsub:some-worker", '{"command": "shutdown"}')
    assert users["worker"].publish("rq:pubsub:some-worker", "{}") == 0
    with pytest.raises(redis.exceptions.NoPermissionError):
        users["worker"].publish("elsewhere", "{}")


def test_the_reader_reads_and_writes_nothing(users):
    users["admin"].set("cloudburst:probe:record", "kept")
    assert users["reader"].get("cloudburst:probe:record") == b"kept"
    for write in (lambda r: r.set("cloudburst:probe:record", "changed"), lambda r: r.delete("cloudburst:probe:record"),
                  lambda r: r.rpush("rq:queue:cloudburst", "job")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            write(users["reader"])
    assert users["admin"].get("cloudburst:probe:record") == b"kept"


def test_the_default_user_is_off_even_with_the_admin_s_password(users):
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=users["port"], password=REDIS_PASSWORDS["admin"]).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=users["port"]).get("cloudburst:probe:record")


def test_transactions_and_scripts_survive_a_restart_from_the_append_only_file(tmp_path):
    """Redis replays its AOF's MULTI/EXEC blocks (scripts' effects are written as such) under the default user's
    permissions: with that user stripped of them every transaction was dropped on restart, silently (a ledger's
    records among them). The default user is off (no one logs in as it) but keeps them."""
    from services import free_port, redis_acl
    port = free_port()
    config = tmp_path / "redis.conf"
    config.write_text("\n".join([f"port {port}", "bind 127.0.0.1", f"dir {tmp_path}", "appendonly yes",
                                 "appendfsync always", "save \"\"", *redis_acl(REDIS_PASSWORDS)]) + "\n")

    def started() -> subprocess.Popen:
        process = subprocess.Popen(["redis-server", str(config)], stdout=subprocess.DEVNULL)
        wait_until("redis-server answers", lambda: redis.Redis(port=port, username="admin",
                                                               password=REDIS_PASSWORDS["admin"]).ping(), 30)
        return process

    server = started()
    try:
        submitter = redis.Redis(port=port, username="submitter", password=REDIS_PASSWORDS["submitter"])
        with submitter.pipeline(transaction=True) as transaction:
            transaction.hset("cloudburst:probe:done", "batch", "recorded").rpush("rq:queue:probe", "job").execute()
        submitter.eval("redis.call('SET', KEYS[1], ARGV[1])", 1, "cloudburst:probe:script", "ran")
    finally:
        server.terminate()
        server.wait(timeout=30)
    server = started()
    try:
        admin = redis.Redis(port=port, username="admin", password=REDIS_PASSWORDS["admin"])
        assert admin.hget("cloudburst:probe:done", "batch") == b"recorded"
        assert admin.lrange("rq:queue:probe", 0, -1) == [b"job"] and admin.get("cloudburst:probe:script") == b"ran"
        with pytest.raises(redis.AuthenticationError):  # and still no one is the default user
            redis.Redis(port=port).get("cloudburst:probe:script")
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_submitters_and_the_reader_read_who_is_an_admin_and_the_quotas_and_cannot_change_them(users):
    users["admin"].sadd("cloudburst-admin:admins", "carol")
    users["admin"].hset("cloudburst-admin:quotas", "submitter", 10)
    for user in ("submitter", "reader"):
        assert users[user].sismember("cloudburst-admin:admins", "carol")
        assert users[user].hget("cloudburst-admin:quotas", "submitter") == b"10"
        for write in (lambda r: r.sadd("cloudburst-admin:admins", "submitter"),
                      lambda r: r.hset("cloudburst-admin:quotas", "submitter", 10**9),
                      lambda r: r.delete("cloudburst-admin:quotas")):
            with pytest.raises(redis.exceptions.NoPermissionError):
                write(users[user])
    assert users["admin"].smembers("cloudburst-admin:admins") == {b"carol"}
    assert users["admin"].hget("cloudburst-admin:quotas", "submitter") == b"10"
