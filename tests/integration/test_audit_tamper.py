"""The audit log on PostgreSQL: append-only for the application, tamper-evident for everyone.

* As the application's own role (which owns the schema) UPDATE, DELETE and TRUNCATE fail; a role
  granted every privilege is still refused by the triggers, and so is a superuser.
* A superuser who switches the triggers off and edits, deletes or swaps entries, or cuts the tail
  off a chain, is named by `flask audit verify`: the chain, the sequence number and why.
"""

from __future__ import annotations

import threading
import uuid

import pytest
import sqlalchemy as sa

from core.audit import writer
from core.audit.chain import chain_of
from core.config import normalise_database_url
from core.db import Database
from core.events.types import EventType
from core.scoping import TenantContext
from core.uow import Origin, UnitOfWork
from tests.conftest import TEST_DATABASE_URL
from tests.support.audit import as_superuser, chain_entries, write_entries

pytestmark = pytest.mark.integration

PRACTICE = uuid.UUID("00000000-0000-4000-8000-00000000a11c")
GRANTEE = "platform_audit_grantee"


@pytest.fixture
def postgres(db):
    if db.dialect != "postgresql":
        pytest.skip("needs PostgreSQL")
    return db


def _verify(app, *args: str):
    return app.test_cli_runner().invoke(args=["audit", "verify", *args])


@pytest.mark.parametrize("statement", [
    "UPDATE audit_entries SET type = 'LOGIN_FAILED'",
    "DELETE FROM audit_entries",
    "TRUNCATE audit_entries",
    "UPDATE audit_checkpoints SET signature = ''",
    "DELETE FROM audit_checkpoints",
])
def test_the_application_role_may_only_insert_and_select(postgres, statement):
    write_entries(postgres, 3, tenant_id=PRACTICE)
    with postgres.engine.connect() as connection:  # platform_test_app: it owns the schema
        connection.execute(sa.text("SELECT set_config('app.all_tenants', 'on', false)"))
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            connection.execute(sa.text(statement))
    assert len(chain_entries(postgres, PRACTICE)) == 3


@pytest.fixture
def grantee(postgres, database_url):
    """A role granted every privilege on every table: only the triggers stand in its way."""
    admin = sa.create_engine(normalise_database_url(TEST_DATABASE_URL))
    with admin.begin() as connection:
        if not connection.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"),
                                  {"r": GRANTEE}).first():
            connection.execute(sa.text(f"CREATE ROLE {GRANTEE} LOGIN NOSUPERUSER BYPASSRLS"))
        connection.execute(sa.text(f"GRANT USAGE ON SCHEMA public TO {GRANTEE}"))
        connection.execute(sa.text(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {GRANTEE}"))
    admin.dispose()
    role = Database(sa.engine.make_url(database_url).set(username=GRANTEE, password=None)
                    .render_as_string(hide_password=False))
    yield role
    role.dispose()


@pytest.mark.parametrize("statement", [
    "UPDATE audit_entries SET type = 'LOGIN_FAILED'",
    "DELETE FROM audit_entries",
    "TRUNCATE audit_entries",
])
def test_triggers_refuse_changes_to_a_role_with_every_privilege_and_to_a_superuser(
        postgres, grantee, statement):
    write_entries(postgres, 3, tenant_id=PRACTICE)
    with grantee.engine.connect() as connection, pytest.raises(
            sa.exc.ProgrammingError, match="append-only"):
        connection.execute(sa.text(statement))
    superuser = sa.create_engine(sa.engine.make_url(normalise_database_url(
        TEST_DATABASE_URL)).set(database=postgres.engine.url.database))
    with superuser.connect() as connection, pytest.raises(
            sa.exc.ProgrammingError, match="append-only"):
        connection.execute(sa.text(statement))
    superuser.dispose()
    assert len(chain_entries(postgres, PRACTICE)) == 3


def test_an_untouched_log_verifies(app, postgres):
    write_entries(postgres, 5, tenant_id=PRACTICE)
    write_entries(postgres, 4)
    assert app.test_cli_runner().invoke(args=["audit", "checkpoint"]).exit_code == 0
    result = _verify(app)
    assert result.exit_code == 0, result.output
    assert "2 chain(s), 9 entries" in result.output


TAMPERING = {
    "edited": ("UPDATE audit_entries SET metadata = '{\"n\": 99}' "
               "WHERE chain_id = :chain AND seq = 5", "seq 5: edited"),
    "edited-ip": ("UPDATE audit_entries SET ip = '203.0.113.66' "
                  "WHERE chain_id = :chain AND seq = 5", "seq 5: edited"),
    "deleted": ("DELETE FROM audit_entries WHERE chain_id = :chain AND seq = 5",
                "seq 5: missing"),
    "swapped": ("UPDATE audit_entries SET seq = CASE seq WHEN 5 THEN 6 ELSE 5 END "
                "WHERE chain_id = :chain AND seq IN (5, 6)", "seq 5: reordered"),
}


@pytest.mark.parametrize("tampering", sorted(TAMPERING))
def test_verify_names_the_sequence_a_superuser_tampered_with(app, postgres, tampering):
    write_entries(postgres, 10, tenant_id=PRACTICE)
    write_entries(postgres, 3)  # another chain, untouched
    statement, expected = TAMPERING[tampering]
    with as_superuser(postgres) as connection:
        connection.execute(sa.text(statement), {"chain": str(PRACTICE)})
    result = _verify(app)
    assert result.exit_code == 1
    assert f"BROKEN chain {PRACTICE}: {expected}" in result.output, result.output
    assert result.output.count("BROKEN") == 1


def test_a_cut_off_tail_is_caught_by_the_last_signed_checkpoint(app, postgres):
    write_entries(postgres, 10, tenant_id=PRACTICE)
    assert app.test_cli_runner().invoke(args=["audit", "checkpoint"]).exit_code == 0
    with as_superuser(postgres) as connection:
        # The entries after seq 7 go, and the writer's own head is set back to match.
        connection.execute(sa.text("DELETE FROM audit_entries WHERE chain_id = :c AND seq > 7"),
                           {"c": str(PRACTICE)})
        head = chain_entries(postgres, PRACTICE)[6].hash
        connection.execute(sa.text("UPDATE audit_chains SET seq = 7, head_hash = :h "
                                   "WHERE chain_id = :c"), {"c": str(PRACTICE), "h": head})
    result = _verify(app, "--tenant", str(PRACTICE))
    assert result.exit_code == 1
    assert f"BROKEN chain {PRACTICE}: seq 8: missing — the chain ends at seq 7, but the " \
           "checkpoint signed" in result.output
    assert "saw it reach seq 10" in result.output


def _sink_records(db) -> list[dict]:
    """Everything delivered so far, as the external sink received it."""
    from core.adapters.audit_sink import MemorySink
    from core.audit import sink

    received = MemorySink()
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        sink.deliver_pending(uow, received)
    return received.records


def _cut_tail_and_checkpoints(db, keep: int) -> None:
    with as_superuser(db) as connection:
        connection.execute(sa.text("DELETE FROM audit_entries WHERE chain_id = :c AND seq > :k"),
                           {"c": str(PRACTICE), "k": keep})
        head = chain_entries(db, PRACTICE)[keep - 1].hash
        connection.execute(sa.text("UPDATE audit_chains SET seq = :k, head_hash = :h "
                                   "WHERE chain_id = :c"), {"c": str(PRACTICE), "h": head,
                                                            "k": keep})
        connection.execute(sa.text("DELETE FROM audit_checkpoints"))


def test_a_tail_cut_off_with_the_checkpoints_is_caught_by_the_sinks_copies(app, postgres,
                                                                           tmp_path):
    import json

    write_entries(postgres, 10, tenant_id=PRACTICE)
    assert app.test_cli_runner().invoke(args=["audit", "checkpoint"]).exit_code == 0
    records = _sink_records(postgres)
    sink_file = tmp_path / "sink.jsonl"
    sink_file.write_text("".join(json.dumps(record) + "\n" for record in records))
    _cut_tail_and_checkpoints(postgres, keep=7)

    # The database alone no longer knows the chain was longer ...
    assert _verify(app).exit_code == 0
    # ... the sink's copy of the checkpoint does.
    result = _verify(app, "--checkpoints", str(sink_file))
    assert result.exit_code == 1, result.output
    assert "1 checkpoint(s) from" in result.output
    assert f"BROKEN chain {PRACTICE}: seq 8: missing — the chain ends at seq 7, but the " \
           "checkpoint signed" in result.output
    assert "saw it reach seq 10" in result.output


def test_a_sink_file_with_an_altered_checkpoint_or_no_records_is_refused(app, postgres,
                                                                        tmp_path):
    import json

    write_entries(postgres, 3, tenant_id=PRACTICE)
    assert app.test_cli_runner().invoke(args=["audit", "checkpoint"]).exit_code == 0
    [record] = [r for r in _sink_records(postgres) if r["kind"] == "checkpoint"]
    record["checkpoint"]["heads"][str(PRACTICE)][0] = 2
    altered = tmp_path / "altered.jsonl"
    altered.write_text(json.dumps(record) + "\n")
    result = _verify(app, "--checkpoints", str(altered))
    assert result.exit_code == 1
    assert "forged-checkpoint" in result.output

    garbled = tmp_path / "garbled.jsonl"
    garbled.write_text('{"kind": "checkpoint", "checkpoint": {"id": 1}}\n')
    result = _verify(app, "--checkpoints", str(garbled))
    assert result.exit_code == 2
    assert "line 1 is not a record as the sink received it" in result.output
    assert "Traceback" not in result.output

    undecodable = tmp_path / "undecodable.jsonl"
    undecodable.write_bytes(b"\xff\xfe\x00 not UTF-8\n")
    result = _verify(app, "--checkpoints", str(undecodable))
    assert result.exit_code == 2
    assert "line 1 is not a record as the sink received it (UnicodeDecodeError" in result.output


def test_a_forged_checkpoint_is_reported(app, postgres):
    write_entries(postgres, 3, tenant_id=PRACTICE)
    assert app.test_cli_runner().invoke(args=["audit", "checkpoint"]).exit_code == 0
    with as_superuser(postgres) as connection:
        connection.execute(sa.text(
            "UPDATE audit_checkpoints SET heads = jsonb_set(heads, ARRAY[:c, '0'], '2')"),
            {"c": str(PRACTICE)})
    result = _verify(app)
    assert result.exit_code == 1
    assert "forged-checkpoint" in result.output


def test_chains_grow_without_gaps_under_concurrent_writers(app, postgres):
    practices = [uuid.uuid4() for _ in range(3)]
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for round_ in range(5):
                with UnitOfWork(postgres, tenant=TenantContext.system()) as uow:
                    for tenant in (*practices, None):
                        uow.record(EventType.TEST_EMAIL_REQUESTED, tenant_id=tenant,
                                   payload={"writer": n, "round": round_})
                    uow.commit()
                    writer.write_pending(uow, batch=3)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with UnitOfWork(postgres, tenant=TenantContext.system()) as uow:
        assert writer.write_pending(uow) == 0
    for tenant in (*practices, None):
        assert [e.seq for e in chain_entries(postgres, tenant)] == list(range(1, 31))
    result = _verify(app)
    assert result.exit_code == 0, result.output
    assert chain_of(None) != chain_of(practices[0])


def test_the_daily_verification_alerts_every_admin_and_the_admin_page_says_so(
        app, client, postgres, side, worker):
    from core.identity import signup
    from core.notifications.models import Notification
    from core.scoping import system_session
    from tests.support.flows import PASSWORD, login

    with UnitOfWork(postgres, tenant=TenantContext.system()) as uow:
        admins = [signup.create_admin(uow, f"admin{n}@platform.example", PASSWORD)
                  for n in range(2)]
        uow.commit()
    write_entries(postgres, 6, tenant_id=PRACTICE)
    side.actors.verify_audit_log.send()
    worker.drain()
    assert login(client, "admin0@platform.example").status_code == 302
    assert "Intact" in client.get("/admin/audit").get_data(as_text=True)
    with as_superuser(postgres) as connection:
        connection.execute(sa.text("DELETE FROM audit_entries WHERE chain_id = :c AND seq = 3"),
                           {"c": str(PRACTICE)})
    side.actors.verify_audit_log.send()
    worker.drain()
    with system_session(postgres) as session:
        alerts = session.execute(sa.select(Notification).where(
            Notification.kind == "audit_integrity")).scalars().all()
    assert sorted(a.account_id for a in alerts) == sorted(a.id for a in admins)
    assert f"Chain {PRACTICE}, seq 3: missing" in alerts[0].body
    page = client.get("/admin/audit").get_data(as_text=True)
    assert "Broken" in page and "seq 3" in page


def test_pseudonymising_entries_as_erasure_will_leaves_every_chain_verifiable(app, postgres):
    """What the personal-data erasure will do to a person's entries: the actor becomes a stable
    pseudonym, the IP is truncated, the user agent and e-mail-like metadata go, and so does the
    salt of their digest. No chained field changes, so the chain still verifies."""
    with UnitOfWork(postgres, origin=Origin(ip="203.0.113.57", user_agent="agent/1"),
                    tenant=TenantContext.system()) as uow:
        for n in range(4):
            uow.record(EventType.TEST_EMAIL_REQUESTED, tenant_id=PRACTICE,
                       actor_account_id=uuid.uuid4(), subject=f"identity:{uuid.uuid4()}",
                       payload={"to": f"person{n}@example.com", "n": n})
        uow.commit()
        writer.write_pending(uow)
    pseudonym = uuid.uuid5(PRACTICE, "erased person")
    with as_superuser(postgres) as connection:
        connection.execute(sa.text(
            "UPDATE audit_entries SET actor_account_id = :p, subject = :s, "
            "ip = host(network(set_masklen(ip, 24)))::inet, user_agent = NULL, "
            "metadata = metadata - 'to', personal_salt = NULL "
            "WHERE chain_id = :c AND seq IN (2, 3)"),
            {"p": str(pseudonym), "s": f"pseudonym:{pseudonym}", "c": str(PRACTICE)})
    result = _verify(app, "--tenant", str(PRACTICE))
    assert result.exit_code == 0, result.output
    assert "4 entries (2 with personal data erased)" in result.output
    erased = [e for e in chain_entries(postgres, PRACTICE) if e.personal_salt is None]
    assert {(e.ip, e.user_agent, "to" in e.details) for e in erased} == {
        ("203.0.113.0", None, False)}
