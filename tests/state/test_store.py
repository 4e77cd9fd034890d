"""The results store, both backends: a real Nginx serving /results/ as the stack does (WebDAV), and an
S3-compatible server (moto's: no S3 service runs here): batches written, listed, read, replaced and deleted; an
upload cut off mid-body leaves nothing a reader sees; users without write rights are refused with a sentence."""
from __future__ import annotations

import base64
import socket
from urllib.parse import urlparse

import pyarrow as pa
import pytest
from cloudburst.errors import ServiceError
from cloudburst.schema.resultformat import decode, encode
from cloudburst.state.store import MEMBERS_DIR, SERIES_DIR, WebDavStore, open_store
from services import nginx_server, s3_server

USERS = {"worker": "worker-secret", "reader": "reader-secret"}


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "files"
    root.mkdir()
    with nginx_server(root, USERS, results_writers=("worker",)) as url:
        yield {"url": f"{url}/results", "root": root}


def table(members: list[int]) -> bytes:
    return encode(pa.table({"member": pa.array(members, pa.int32()), "value": pa.array([0.5] * len(members),
                                                                                       pa.float32())}), ["value"])


@pytest.fixture
def s3(tmp_path):
    import boto3
    with s3_server(tmp_path) as endpoint:
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="key",
                     aws_secret_access_key="secret").create_bucket(Bucket="results")
        yield endpoint


@pytest.fixture(params=["webdav", "s3"])
def store(request, tmp_path):
    """Each backend, with a way to count the bytes it holds for an ensemble (the files on disk, the objects)."""
    if request.param == "webdav":
        served = request.getfixturevalue("served")
        yield open_store(served["url"], ("worker", USERS["worker"])), lambda name: sum(
            path.stat().st_size for path in (served["root"] / "results" / name).rglob("*.parquet"))
    else:
        endpoint = request.getfixturevalue("s3")
        opened = open_store("s3://results/cloudburst", ("key", "secret"), endpoint)
        yield opened, lambda name: sum(int(entry["Size"]) for entry in opened.client.list_objects_v2(
            Bucket="results", Prefix=f"cloudburst/{name}/").get("Contents", []))


@pytest.mark.services  # starts its own service (or Docker) inside the test
def test_a_batch_is_written_listed_read_replaced_and_deleted(store):
    store, held = store
    store.put_batch("study.1", "0000000-0000001", table([0, 1]), table([0, 1]))
    store.put_batch("study.1", "0000002-0000002", None, table([2]))  # a batch whose members asked for no series
    assert store.batches("study.1") == ["0000000-0000001", "0000002-0000002"]
    assert store.batches("study.1", SERIES_DIR) == ["0000000-0000001"]
    assert decode(store.read("study.1", MEMBERS_DIR, "0000002-0000002")).column("member").to_pylist() == [2]
    assert store.read("study.1", SERIES_DIR, "0000002-0000002") is None
    store.put_batch("study.1", "0000000-0000001", table([0, 1]), table([1, 0]))  # run again: replaced
    assert store.batches("study.1") == ["0000000-0000001", "0000002-0000002"]
    assert decode(store.read("study.1", MEMBERS_DIR, "0000000-0000001")).column("member").to_pylist() == [1, 0]
    assert store.size("study.1") == held("study.1") > 0
    assert store.batches("no-such-ensemble") == [] and store.size("no-such-ensemble") == 0
    assert store.delete("study.1") and held("study.1") == 0
    assert store.batches("study.1") == [] and not store.delete("study.1")


def test_an_upload_cut_off_mid_body_leaves_no_file(served):
    store = WebDavStore(served["url"], ("worker", USERS["worker"]))
    store.put_batch("cut", "0000000-0000000", None, table([0]))
    target = urlparse(served["url"])
    with socket.create_connection((target.hostname, target.port)) as connection:
        credentials = base64.b64encode(f"worker:{USERS['worker']}".encode()).decode()
        connection.sendall((f"PUT {target.path}/cut/members/0000001-0000001.parquet HTTP/1.1\r\n"
                            f"Host: {target.hostname}\r\nAuthorization: Basic {credentials}\r\n"
                            "Content-Length: 1000000\r\n\r\n").encode() + b"PAR1" + b"\0" * 4000)
    # A worker killed mid-write: the connection closed after 4 kB of 1 MB. Only the complete batch is listed.
    assert store.batches("cut") == ["0000000-0000000"]
    assert store.read("cut", MEMBERS_DIR, "0000001-0000001") is None


def test_a_user_without_write_rights_is_refused_with_a_sentence(served):
    reader = WebDavStore(served["url"], ("reader", USERS["reader"]))
    with pytest.raises(ServiceError, match="the results store at .* refused user 'reader'"):
        reader.put_batch("refused", "0000000-0000000", None, table([0]))
    with pytest.raises(ServiceError, match="refused user 'nobody'"):
        WebDavStore(served["url"], ("nobody", "x")).batches("refused")


def test_an_s3_store_without_its_bucket_says_so(s3):
    with pytest.raises(ServiceError, match=f"the results store at {s3} has no bucket 'missing'"):
        open_store("s3://missing/x", ("key", "secret"), s3).batches("any")
