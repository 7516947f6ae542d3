"""The file store: where exports and audit archives go. A folder under instance/ by default,
`STORAGE_URL=s3://bucket/prefix` for an S3-compatible store, memory in unit tests.

A file is written through `writer(key)`, which makes it visible only once the block completed:
a worker killed half-way leaves no half file under its key, and writing the same key again
replaces it whole (a retried export overwrites, never appends). What a killed writer leaves
behind (a folder's partial file, an S3 multipart upload) is removed by `remove_abandoned`, which
the daily retention job calls.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Protocol
from urllib.parse import urlsplit

CHUNK = 256 * 1024
# A file being written: `.{name}.{random}.partial` beside where it will appear.
PARTIAL = ".partial"


class FileStore(Protocol):
    def writer(self, key: str) -> contextlib.AbstractContextManager[IO[bytes]]:
        """A binary file to write `key` into; it appears under `key` when the block ends
        without an error."""
        ...

    def read(self, key: str) -> Iterator[bytes]:
        """The file's bytes, in chunks; FileNotFoundError if there is none."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove `key`; nothing happens if there is none (the health probe cleans up after
        itself; an erasure may run twice)."""
        ...

    def remove_abandoned(self, started_before: datetime) -> int:
        """Remove the partial files of writers that died (killed mid-export) and that were
        last written before `started_before`; how many went."""
        ...

    def describe(self) -> str: ...


def _safe_key(key: str) -> str:
    parts = [part for part in key.split("/") if part]
    if not parts or any(part in (".", "..") for part in parts):
        raise ValueError(f"not a file-store key: {key!r}")
    return "/".join(parts)


class LocalFileStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / _safe_key(key)

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[IO[bytes]]:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed or removed below
            dir=path.parent, prefix=f".{path.name}.", suffix=PARTIAL, delete=False)
        try:
            with handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(handle.name, path)
        except BaseException:
            Path(handle.name).unlink(missing_ok=True)
            raise

    def read(self, key: str) -> Iterator[bytes]:
        with self._path(key).open("rb") as handle:
            while chunk := handle.read(CHUNK):
                yield chunk

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def remove_abandoned(self, started_before: datetime) -> int:
        # A live writer touches its file with every chunk: only a dead one's stops changing.
        cutoff, removed = started_before.timestamp(), 0
        for path in self.root.rglob(f".*{PARTIAL}"):
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:  # its writer finished (or failed) meanwhile
                continue
        return removed

    def describe(self) -> str:
        return f"folder {self.root}"


class MemoryFileStore:
    """The in-memory twin (unit tests)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[IO[bytes]]:
        import io

        buffer = io.BytesIO()
        yield buffer
        with self._lock:
            self.files[_safe_key(key)] = buffer.getvalue()

    def read(self, key: str) -> Iterator[bytes]:
        with self._lock:
            data = self.files.get(_safe_key(key))
        if data is None:
            raise FileNotFoundError(key)
        yield data

    def exists(self, key: str) -> bool:
        return _safe_key(key) in self.files

    def delete(self, key: str) -> None:
        with self._lock:
            self.files.pop(_safe_key(key), None)

    def remove_abandoned(self, started_before: datetime) -> int:
        return 0  # a writer that dies takes its buffer with it

    def describe(self) -> str:
        return "memory"


class S3FileStore:
    """An S3-compatible bucket (AWS, MinIO, Ceph …) through boto3, which is imported only when
    STORAGE_URL names one. A file is spooled to a temporary file, then uploaded in one go (in
    parts when large): the object exists only once the upload completed."""

    def __init__(self, bucket: str, prefix: str, *, endpoint_url: str | None = None) -> None:
        import boto3

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = boto3.client("s3", endpoint_url=endpoint_url)

    def _key(self, key: str) -> str:
        return "/".join(part for part in (self.prefix, _safe_key(key)) if part)

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[IO[bytes]]:
        with tempfile.TemporaryFile() as spool:
            yield spool
            spool.seek(0)
            self.client.upload_fileobj(spool, self.bucket, self._key(key))

    def read(self, key: str) -> Iterator[bytes]:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except self.client.exceptions.NoSuchKey:
            raise FileNotFoundError(key) from None
        yield from body.iter_chunks(CHUNK)

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except Exception:
            return False
        return True

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def remove_abandoned(self, started_before: datetime) -> int:
        """Abort the multipart uploads of writers killed mid-upload (the spool was a temporary
        file, which the system removed with the process); the parts cost storage until then."""
        removed = 0
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}/" if self.prefix else "")
        for page in pages:
            for upload in page.get("Uploads", []):
                if upload["Initiated"] < started_before:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                    removed += 1
        return removed

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def build_file_store(storage_url: str | None, instance_path: Path) -> FileStore:
    """STORAGE_URL: unset → instance/files; file:///path → that folder; s3://bucket/prefix
    (AWS_ENDPOINT_URL for another S3-compatible service, credentials as boto3 finds them)."""
    if not storage_url:
        return LocalFileStore(instance_path / "files")
    parts = urlsplit(storage_url)
    if parts.scheme == "file":
        return LocalFileStore(Path(parts.path))
    return S3FileStore(parts.netloc, parts.path, endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))
