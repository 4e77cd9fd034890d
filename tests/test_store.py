"""The results store against a real Nginx serving /results/ as the stack does: batches written, listed, read,
replaced and deleted over WebDAV; an upload cut off mid-body leaves nothing a reader sees; users without write
rights are refused with a sentence."""
from __future__ import annotations

import base64
import socket
from urllib.parse import urlparse

import pyarrow as pa
import pytest

from cloudburst.errors import ServiceError
from cloudburst.store import MEMBERS_DIR, SERIES_DIR, ResultsStore, decode, encode
from services import nginx_server

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


def test_a_batch_is_written_listed_read_replaced_and_deleted(served):
    store = ResultsStore(served["url"], ("worker", USERS["worker"]))
    store.put_batch("study.1", "0000000-0000001", table([0, 1]), table([0, 1]))
    store.put_batch("study.1", "0000002-0000002", None, table([2]))  # a batch whose members asked for no series
    assert store.batches("study.1") == ["0000000-0000001", "0000002-0000002"]
    assert store.batches("study.1", SERIES_DIR) == ["0000000-0000001"]
    assert decode(store.read("study.1", MEMBERS_DIR, "0000002-0000002")).column("member").to_pylist() == [2]
    assert store.read("study.1", SERIES_DIR, "0000002-0000002") is None
    store.put_batch("study.1", "0000000-0000001", table([0, 1]), table([1, 0]))  # run again: replaced
    assert store.batches("study.1") == ["0000000-0000001", "0000002-0000002"]
    assert decode(store.read("study.1", MEMBERS_DIR, "0000000-0000001")).column("member").to_pylist() == [1, 0]
    on_disk = sum(path.stat().st_size for path in (served["root"] / "results" / "study.1").rglob("*.parquet"))
    assert store.size("study.1") == on_disk > 0
    assert store.batches("no-such-ensemble") == [] and store.size("no-such-ensemble") == 0
    assert store.delete("study.1") and not (served["root"] / "results" / "study.1").exists()
    assert store.batches("study.1") == [] and not store.delete("study.1")


def test_an_upload_cut_off_mid_body_leaves_no_file(served):
    store = ResultsStore(served["url"], ("worker", USERS["worker"]))
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
    reader = ResultsStore(served["url"], ("reader", USERS["reader"]))
    with pytest.raises(ServiceError, match="the results store at .* refused user 'reader'"):
        reader.put_batch("refused", "0000000-0000000", None, table([0]))
    with pytest.raises(ServiceError, match="refused user 'nobody'"):
        ResultsStore(served["url"], ("nobody", "x")).batches("refused")
