"""CloudBurst's Redis connections (cloudburst.state.connection) on a real Redis, over TLS and in plain text: a request
reaches Redis whole, in one read, where redis-py's own connection sends it in pieces Redis reads one by one."""
import pytest
import redis
from services import redis_server, tls_material

from cloudburst.state.connection import WRITE_BYTES, coalesced, connect

pytestmark = pytest.mark.services

PASSWORD = "connection-secret"


@pytest.fixture(scope="module", params=["tls", "plain"])
def server(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp(f"connection-{request.param}")
    material = tls_material(directory) if request.param == "tls" else None
    with redis_server(directory, password=PASSWORD, tls=material) as url:
        ca_file = str(material["ca"]) if material else None
        yield {"url": url, "ca_file": ca_file,
               "admin": redis.Redis.from_url(url, **({"ssl_ca_certs": ca_file} if ca_file else {}))}


def reads_taken(server: dict, request) -> int:
    """Read events Redis served for ``request()`` (from INFO's counter; the second INFO's own read left out)."""
    before = server["admin"].info("stats")["total_reads_processed"]
    request()
    return server["admin"].info("stats")["total_reads_processed"] - before - 1


def a_job_s_end(connection: redis.Redis) -> list:
    """A transaction the size of a job's end: a 10 KB result (over redis-py's 6,000-byte pieces) and its bookkeeping."""
    pipeline = connection.pipeline(transaction=True)
    pipeline.hset("rq:job:probe", mapping={"result": b"r" * 10_000, "status": "finished"})
    pipeline.zadd("rq:finished:probe", {"probe": 1})
    pipeline.zrem("rq:started:probe", "probe")
    pipeline.hget("rq:job:probe", "result")
    return pipeline.execute()


def test_a_job_s_end_reaches_redis_in_one_read_and_reads_back_whole(server):
    ours = connect(server["url"], password=PASSWORD, ca_file=server["ca_file"])
    ours.ping()  # connected and authenticated before counting
    replies: list = []
    assert reads_taken(server, lambda: replies.extend(a_job_s_end(ours))) == 1
    assert replies[-1] == b"r" * 10_000


def test_redis_py_s_own_connection_sends_the_same_end_in_pieces(server):
    """The reference: what the test above would count without CloudBurst's connection (a read per TLS record)."""
    if not server["ca_file"]:
        pytest.skip("in plain text the pieces arrive together and Redis reads them at once: nothing to compare")
    theirs = redis.Redis.from_url(server["url"], password=PASSWORD,
                                  **({"ssl_ca_certs": server["ca_file"]} if server["ca_file"] else {}))
    theirs.ping()
    assert reads_taken(server, lambda: a_job_s_end(theirs)) > 1


def test_a_value_larger_than_a_write_reads_back_whole(server):
    ours = connect(server["url"], password=PASSWORD, ca_file=server["ca_file"])
    value = bytes(range(256)) * (3 * WRITE_BYTES // 256 + 7)
    pipeline = ours.pipeline(transaction=False)
    for key in ("probe:a", "probe:b"):
        pipeline.set(key, value)
    pipeline.get("probe:a")
    pipeline.strlen("probe:b")
    assert pipeline.execute()[2:] == [value, len(value)]


def test_pieces_join_in_order_up_to_a_write_and_a_larger_one_is_not_copied():
    large = memoryview(b"x" * (WRITE_BYTES + 1))
    writes = coalesced([b"a" * 10, b"b" * (WRITE_BYTES - 10), b"c", large, b"d", b"e"])
    assert [bytes(write) for write in writes] == [b"a" * 10 + b"b" * (WRITE_BYTES - 10), b"c", bytes(large), b"de"]
    assert writes[2] is large
    assert coalesced([b"only"]) == [b"only"]
