"""The file store on an S3-compatible service (moto's server on loopback, no cloud): what the
local folder does, the S3 store does, and a file half-written is never visible."""

from __future__ import annotations

import pytest

from core.adapters.files import LocalFileStore, S3FileStore, build_file_store
from tests.conftest import DETAILS, free_port, make_settings
from tests.support.apps import make_app

pytestmark = pytest.mark.integration


@pytest.fixture
def s3_server(monkeypatch):
    """moto's server with the bucket `audit-exports`; (server, endpoint). A test may stop it."""
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
    running = [True]

    def stop() -> None:
        if running.pop() if running else False:
            server.stop()

    yield stop, endpoint
    stop()


@pytest.fixture
def s3(s3_server):
    _stop, endpoint = s3_server
    return endpoint


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


def test_health_probes_the_s3_store_and_fails_when_it_stops(db, database_url, instance_dir,
                                                            s3_server):
    import boto3

    stop, endpoint = s3_server
    app = make_app(make_settings(database_url, instance_dir,
                                 storage_url="s3://audit-exports/platform"), db)
    client = app.test_client()
    response = client.get("/api/health", headers=DETAILS)
    storage = response.get_json()["checks"]["storage"]
    assert storage == {**storage, "status": "pass", "detail": "s3://audit-exports/platform"}
    # The probe (health/probe) was written, read back and deleted (moto keeps the other tests'
    # objects: its state is per process, not per server).
    listed = boto3.client("s3", endpoint_url=endpoint).list_objects_v2(Bucket="audit-exports")
    assert "platform/health/probe" not in [o["Key"] for o in listed.get("Contents", [])]
    stop()
    response = client.get("/api/health", headers=DETAILS)
    body = response.get_json()
    assert body["checks"]["storage"]["status"] == "fail"
    # Exports cannot land, but pages and log-ins work: degraded, not down.
    assert response.status_code == 200 and body["status"] == "degraded"
    assert body["checks"]["database"]["status"] == "pass"


KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from core.adapters.files import LocalFileStore
with LocalFileStore(Path(sys.argv[1])).writer("audit-exports/killed.csv") as out:
    out.write(b"half an export\\n")
    out.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_writer_killed_mid_file_leaves_a_partial_file_that_is_removed_later(tmp_path):
    import os
    import subprocess
    import sys
    from datetime import UTC, datetime, timedelta

    from tests.conftest import ROOT

    store = LocalFileStore(tmp_path)
    with store.writer("audit-exports/whole.csv") as out:
        out.write(b"a whole export\n")
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], cwd=ROOT,
                            check=False)
    assert killed.returncode == -9
    assert not store.exists("audit-exports/killed.csv")
    [partial] = [p for p in (tmp_path / "audit-exports").iterdir() if p.name != "whole.csv"]
    written = datetime.fromtimestamp(partial.stat().st_mtime, UTC)

    # Still being written, as far as anyone can tell: kept.
    assert store.remove_abandoned(written - timedelta(seconds=1)) == 0
    assert partial.exists()
    assert store.remove_abandoned(written + timedelta(seconds=1)) == 1
    assert not partial.exists()
    assert b"".join(store.read("audit-exports/whole.csv")) == b"a whole export\n"
    assert os.listdir(tmp_path / "audit-exports") == ["whole.csv"]


def test_uploads_of_a_killed_writer_are_aborted_on_s3(tmp_path, s3):
    from datetime import UTC, datetime, timedelta

    import boto3

    store = build_file_store("s3://audit-exports/platform", tmp_path)
    client = boto3.client("s3", endpoint_url=s3)
    client.create_multipart_upload(Bucket="audit-exports", Key="platform/audit-exports/big.csv")
    client.create_multipart_upload(Bucket="audit-exports", Key="elsewhere/not-ours.csv")
    with store.writer("audit-exports/whole.csv") as out:
        out.write(b"a whole export\n")

    # (moto reports every upload as initiated in 2010, so the cutoff itself is tested on the
    # folder store above.)
    assert store.remove_abandoned(datetime.now(UTC) + timedelta(minutes=1)) == 1
    left = client.list_multipart_uploads(Bucket="audit-exports").get("Uploads", [])
    assert [upload["Key"] for upload in left] == ["elsewhere/not-ours.csv"]
    assert store.exists("audit-exports/whole.csv")
