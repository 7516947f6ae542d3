"""Nobody can flood a person's inbox through the platform: e-mails past a recipient's allowance
are counted as suppressed, not sent (issue 14: 10 reset e-mails in a minute, 930 "someone tried
to sign up with your address" e-mails in one scan)."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from core.mail.allowance import BY_KIND, Decision, decide, recipient_hash
from core.mail.models import MailLog
from core.scoping import TenantContext
from core.uow import UnitOfWork
from tests.support.factories import practice
from tests.support.flows import post_form, signup_therapist


def _log(platform, address):
    return platform.rows(MailLog, MailLog.recipient_hash == recipient_hash(address))


def test_ten_reset_requests_send_the_allowance_and_count_the_rest(platform):
    harbour = practice(platform.db, "Harbour Counselling", slug_hint="harbour")
    client = platform.client()
    for _ in range(10):
        response = post_form(client, "/forgot-password", {"email": harbour.therapist_email})
        assert response.status_code == 200  # the same answer every time
    platform.settle()
    allowed = BY_KIND["password_reset"].count
    resets = [m for m in platform.smtp.to(harbour.therapist_email)
              if "reset" in m["Subject"].lower()]
    assert len(resets) == allowed
    statuses = sorted(row.status for row in _log(platform, harbour.therapist_email)
                      if row.kind == "password_reset")
    assert statuses == ["sent"] * allowed + ["suppressed"] * (10 - allowed)


def test_sign_up_scans_against_a_known_address_reach_it_a_few_times_only(platform):
    harbour = practice(platform.db, "Harbour Counselling", slug_hint="harbour")
    for attempt in range(8):
        signup_therapist(platform.client(), email=harbour.therapist_email,
                         practice=f"Scan {attempt}")
    platform.settle()
    notices = platform.smtp.to(harbour.therapist_email)
    assert len(notices) == BY_KIND["signup_exists"].count
    suppressed = [r for r in _log(platform, harbour.therapist_email) if r.status == "suppressed"]
    assert len(suppressed) == 8 - BY_KIND["signup_exists"].count


def test_one_flooded_inbox_does_not_hold_back_anyone_else(platform):
    harbour = practice(platform.db, "Harbour Counselling", slug_hint="harbour")
    client = platform.client()
    for _ in range(6):
        post_form(client, "/forgot-password", {"email": harbour.therapist_email})
    post_form(client, "/forgot-password", {"email": harbour.client_email})
    platform.settle()
    assert len(platform.smtp.to(harbour.client_email)) == 1
    with platform.db.session() as session:
        kept = session.scalar(sa.select(sa.func.count()).select_from(MailLog))
    assert kept == 7  # only a hash of each address is kept, never the address
    assert not platform.rows(MailLog, MailLog.recipient_hash == harbour.client_email)


def test_workers_deciding_at_once_never_send_past_the_allowance(db):
    """Eight workers mailing one address at the same moment: each waits for the one before it
    to commit, so exactly the allowance is sent and the rest are suppressed."""
    allowed = BY_KIND["password_reset"].count
    start = threading.Barrier(8)

    def one_worker(_number: int) -> Decision:
        with UnitOfWork(db, tenant=TenantContext.system()) as uow:
            start.wait(timeout=10)
            decision = decide(uow.session, "Flooded@Example.com ", "password_reset",
                              uuid.uuid4())
            uow.commit()
        return decision

    with ThreadPoolExecutor(8) as pool:
        decisions = list(pool.map(one_worker, range(8)))
    assert sorted(d.send for d in decisions) == [False] * (8 - allowed) + [True] * allowed
    assert {d.reason for d in decisions if not d.send} == {
        f"{allowed} password_reset e-mail(s) to this address in the last 1:00:00"}
    with db.session() as session:
        statuses = session.execute(sa.select(MailLog.status).where(
            MailLog.recipient_hash == recipient_hash("flooded@example.com"))).scalars().all()
    assert sorted(statuses) == ["sent"] * allowed + ["suppressed"] * (8 - allowed)


def test_a_retried_e_mail_keeps_its_first_decision_and_is_counted_once(db):
    event_id = uuid.uuid4()
    decisions = []
    for _attempt in range(3):
        with UnitOfWork(db, tenant=TenantContext.system()) as uow:
            decisions.append(decide(uow.session, "once@example.com", "invitation", event_id))
            uow.commit()
    assert decisions == [Decision(send=True), Decision(send=True, earlier=True),
                         Decision(send=True, earlier=True)]
    with db.session() as session:
        assert session.execute(sa.select(sa.func.count()).select_from(MailLog)).scalar_one() == 1
