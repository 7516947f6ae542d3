"""The external audit sink: every entry at least once, in order per chain, with its id; signed
over HTTPS as our webhooks are, or RFC 5424 over TLS; its lag in /api/health."""

from __future__ import annotations

import uuid

import pytest

from core.adapters.audit_sink import HttpsSink, MemorySink, SinkFailed, SyslogTlsSink
from core.audit import checkpoints, sink
from core.scoping import TenantContext
from core.uow import UnitOfWork
from tests.conftest import DETAILS
from tests.support.audit import write_entries
from tests.support.audit_sink import (
    HEADER,
    HttpSinkReceiver,
    SyslogTlsReceiver,
    self_signed_certificate,
)

PRACTICE = uuid.UUID("00000000-0000-4000-8000-0000000005e1")
SECRET = "audit-sink-secret-0123456789"


def _deliver(db, target) -> int:
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        return sink.deliver_pending(uow, target, batch=7)


def _by_chain(records: list[dict]) -> dict[str, list[int]]:
    chains: dict[str, list[int]] = {}
    for record in records:
        if record["kind"] == "entry":
            chains.setdefault(record["chain_id"], []).append(record["seq"])
    return chains


def test_every_entry_and_checkpoint_reaches_the_sink_once_in_chain_order(db):
    write_entries(db, 20, tenant_id=PRACTICE)
    write_entries(db, 5)
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        checkpoints.sign_heads(uow, b"key")
    memory = MemorySink()
    assert _deliver(db, memory) == 26
    assert _deliver(db, memory) == 0  # nothing new
    assert _by_chain(memory.records) == {str(PRACTICE): list(range(1, 21)),
                                         str(uuid.UUID(int=0)): list(range(1, 6))}
    [checkpoint] = [r for r in memory.records if r["kind"] == "checkpoint"]
    assert checkpoint["checkpoint"]["heads"][str(PRACTICE)][0] == 20
    assert checkpoint["signature"]
    assert len({r["id"] for r in memory.records}) == 26


def test_a_failed_delivery_is_sent_again_from_where_it_stopped(db):
    write_entries(db, 10, tenant_id=PRACTICE)

    class Flaky(MemorySink):
        calls = 0

        def send(self, records):
            self.calls += 1
            if self.calls == 2:
                raise SinkFailed("the sink is down")
            super().send(records)

    flaky = Flaky()
    with pytest.raises(SinkFailed):
        _deliver(db, flaky)
    assert [r["seq"] for r in flaky.records] == list(range(1, 8))
    assert sink_lag_entries(db) == 3
    assert _deliver(db, flaky) == 3
    assert [r["seq"] for r in flaky.records] == list(range(1, 11))
    assert sink_lag_entries(db) == 0


def sink_lag_entries(db) -> int:
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        return sink.lag(uow.session).entries


def test_https_batches_are_signed_as_webhooks_are(db):
    receiver = HttpSinkReceiver(SECRET).start()
    try:
        write_entries(db, 4, tenant_id=PRACTICE)
        receiver.fail_next = 1
        target = HttpsSink(receiver.url, SECRET)
        with pytest.raises(SinkFailed, match="503"):
            _deliver(db, target)
        assert _deliver(db, target) == 4
    finally:
        receiver.stop()
    assert receiver.invalid == 0
    assert [r["seq"] for r in receiver.entries()] == [1, 2, 3, 4]
    assert receiver.entries()[0]["practice_id"] == str(PRACTICE)


def test_syslog_over_tls_carries_rfc5424_messages(db, tmp_path):
    cert, key = self_signed_certificate(tmp_path)
    receiver = SyslogTlsReceiver(cert, key).start()
    try:
        write_entries(db, 3, tenant_id=PRACTICE)
        target = SyslogTlsSink("localhost", receiver.port, ca_file=str(cert))
        assert _deliver(db, target) == 3
    finally:
        receiver.stop()
    messages = receiver.records()
    assert [record["seq"] for _, record in messages] == [1, 2, 3]
    header = HEADER.match(messages[0][0])
    assert header is not None, messages[0][0]
    priority, _, _, msgid, data = header.groups()
    assert int(priority) == 13 * 8 + 5 and msgid == "TEST_EMAIL_REQUESTED"
    assert f'chain="{PRACTICE}"' in data and 'seq="1"' in data


def test_a_sink_with_an_untrusted_certificate_is_refused(db, tmp_path):
    cert, key = self_signed_certificate(tmp_path)
    receiver = SyslogTlsReceiver(cert, key).start()
    try:
        write_entries(db, 1, tenant_id=PRACTICE)
        with pytest.raises(SinkFailed, match="CERTIFICATE"):
            _deliver(db, SyslogTlsSink("localhost", receiver.port))
    finally:
        receiver.stop()
    assert sink_lag_entries(db) == 1


def test_health_reports_the_sinks_lag(app, client, db):
    app.extensions["settings"] = app.extensions["settings"].with_overrides(
        audit_sink_url="https://sink.example/audit")
    write_entries(db, 4, tenant_id=PRACTICE)
    check = client.get("/api/health", headers=DETAILS).get_json()["checks"]["audit_sink"]
    assert check["status"] == "pass"
    assert check["detail"].startswith("4 entries behind in 1 chain(s), oldest ")
