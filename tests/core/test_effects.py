"""Side effects run by the pipeline's runner against the in-memory adapters: once per event."""

from __future__ import annotations

import email
import email.policy

import sqlalchemy as sa

from core.effects import handler_named, handlers_for
from core.events.models import Event
from core.identity import signup
from core.identity.directory import identity_by_email
from core.identity.models import Account
from core.pipeline.runner import Outcome, run_handler
from core.scoping import TenantContext, system_session
from core.tenancy.models import Tenant
from core.uow import UnitOfWork
from tests.support.factories import finish_onboarding
from tests.support.flows import PASSWORD


def _run(db, services, handler_name: str, event_id) -> Outcome:
    with UnitOfWork(db, tenant=TenantContext.system()) as uow:
        return run_handler(uow, services, handler_named(handler_name), event_id, "message-1")


def _signed_up(db) -> Event:
    with UnitOfWork(db) as uow:
        signup.signup_therapist(uow, practice_name="Harbour", display_name="Ada",
                                email="ada@harbour.example", password=PASSWORD)
        uow.commit()
    with system_session(db) as session:
        return session.execute(sa.select(Event).where(Event.type == "USER_CREATED")).scalar_one()


def test_a_new_identity_gets_one_confirmation_e_mail_however_often_it_runs(db, services):
    event = _signed_up(db)
    assert "send_verification_email" in {h.name for h in handlers_for(event.type,
                                                                       services.settings)}
    assert _run(db, services, "send_verification_email", event.id) is Outcome.DONE
    assert _run(db, services, "send_verification_email", event.id) is Outcome.ALREADY_DONE
    [mail] = services.mailer.sent.values()
    message = email.message_from_bytes(mail.data, policy=email.policy.default)
    assert message["To"] == "ada@harbour.example"
    assert "/verify-email/" in message.get_body(("plain",)).get_content()


def test_a_webhook_is_delivered_for_business_events_when_configured(db, services):
    services.settings = services.settings.with_overrides(
        webhook_url="https://receiver.example/hooks", webhook_secret="x" * 20)
    event = _signed_up(db)
    assert _run(db, services, "deliver_webhook", event.id) is Outcome.DONE
    [(url, body)] = services.webhooks.delivered
    assert url == "https://receiver.example/hooks" and str(event.id).encode() in body


def test_a_finished_therapist_opens_the_practice_once(db, services):
    _signed_up(db)
    with system_session(db) as session:
        account = session.get(Account, identity_by_email(session, "ada@harbour.example").id)
    finish_onboarding(db, account)
    with system_session(db) as session:
        completed = session.execute(sa.select(Event).where(
            Event.type == "ONBOARDING_COMPLETED")).scalar_one()
    assert _run(db, services, "initialise_tenant", completed.id) is Outcome.DONE
    assert _run(db, services, "initialise_tenant", completed.id) is Outcome.ALREADY_DONE
    with system_session(db) as session:
        tenant = session.execute(sa.select(Tenant)).scalar_one()
        assert tenant.status == "active" and tenant.settings["time_zone"] == "Europe/London"
