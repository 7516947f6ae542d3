"""The file store on an S3-compatible service (moto's server on loopback, no cloud): what the
local folder does, the S3 store does, and a file half-written is never visible."""

from __future__ import annotations

import pytest

from core.adapters.files import LocalFileStore, S3FileStore, build_file_store
from tests.conftest import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def s3(monkeypatch):
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_ENDPOINT_URL", endpoint)):
        monkeypatch.setenv(name, value)
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="audit-exports")
    yield endpoint
    server.stop()


def test_storage_url_chooses_the_store(tmp_path, s3):
    assert isinstance(build_file_store(None, tmp_path), LocalFileStore)
    store = build_file_store("s3://audit-exports/platform/prod", tmp_path)
    assert isinstance(store, S3FileStore)
    assert store.describe() == "s3://audit-exports/platform/prod"


def test_a_file_appears_whole_or_not_at_all(tmp_path, s3):
    store = build_file_store("s3://audit-exports/platform", tmp_path)
    with store.writer("audit-exports/one.jsonl") as out:
        for n in range(20_000):
            out.write(b'{"n": %d}\n' % n)
    assert store.exists("audit-exports/one.jsonl")
    data = b"".join(store.read("audit-exports/one.jsonl"))
    assert data.count(b"\n") == 20_000
    with pytest.raises(RuntimeError), store.writer("audit-exports/two.jsonl") as out:
        out.write(b"half a file")
        raise RuntimeError("the worker died")
    assert not store.exists("audit-exports/two.jsonl")
    with pytest.raises(FileNotFoundError):
        list(store.read("audit-exports/two.jsonl"))
