"""E-mail as it leaves the platform: what a mail client reads, over real SMTP (aiosmtpd)."""

from __future__ import annotations

import email
import email.policy

import pytest

from core.adapters.mail import FileMailer, SmtpMailer
from core.adapters.mime import HeaderInjection, build_mail
from core.mail.render import compose

SENDER = "Práctica Demo <no-reply@practice.example>"


def _mail(to: str = "client@example.com", subject: str = "Welcome", **changes: str):
    fields = {"sender": SENDER, "to": to, "subject": subject,
              "date": "Fri, 27 Nov 2026 21:00:00 GMT", "message_id": "<e1.h@practice.example>",
              "text": "Hello — welcome.\nSecond line ✓", "html": "<p>Hello — welcome.</p>"}
    return build_mail(**{**fields, **changes})


def _parse(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def test_a_template_reads_back_as_rendered_with_both_parts(smtp_server) -> None:
    mail = compose("test_email", to="client@example.com", sender=SENDER,
                   message_id="<e1.send_test_email@practice.example>",
                   context={"public_url": "https://practice.example", "sent_at": "today"})
    SmtpMailer(smtp_server.url).send(mail)
    [received] = smtp_server.wait_for(1)
    assert received["Subject"] == "Test message from Practice Platform"
    assert received["From"].addresses[0].display_name == "Práctica Demo"
    assert received["From"].addresses[0].addr_spec == "no-reply@practice.example"
    assert received["To"] == "client@example.com"
    assert received["Message-ID"] == "<e1.send_test_email@practice.example>"
    assert received["Date"].datetime is not None
    assert received.get_body(("plain",)).get_content().startswith("This is a test message")
    assert "</" in received.get_body(("html",)).get_content()
    assert smtp_server.envelopes == [("no-reply@practice.example", ["client@example.com"], False)]


def test_non_ascii_and_long_subjects_are_encoded_and_folded() -> None:
    subject = "Bienvenue — votre cabinet est prêt ✓ " * 4
    message = _parse(_mail(subject=subject.strip()).data)
    assert message["Subject"] == subject.strip()
    assert message.get_body(("plain",)).get_content() == "Hello — welcome.\nSecond line ✓"
    header_block = _mail(subject=subject.strip()).data.split(b"\r\n\r\n")[0]
    assert all(len(line) <= 78 for line in header_block.split(b"\r\n"))


@pytest.mark.parametrize("field", ["subject", "to", "sender", "message_id"])
def test_a_line_break_in_a_header_is_refused(field: str) -> None:
    with pytest.raises(HeaderInjection):
        _mail(**{field: "x@example.com\r\nBcc: victim@example.com"})


def test_an_address_beyond_ascii_goes_out_with_smtputf8(smtp_server) -> None:
    mail = _mail(to="josé@example.com")
    assert mail.smtputf8
    SmtpMailer(smtp_server.url).send(mail)
    [received] = smtp_server.wait_for(1)
    assert received["To"] == "josé@example.com"
    assert smtp_server.envelopes[0][1:] == (["josé@example.com"], True)


def test_consecutive_emails_share_one_connection(smtp_server) -> None:
    mailer = SmtpMailer(smtp_server.url)
    for number in range(5):
        mailer.send(_mail(to=f"client{number}@example.com"))
    assert len(smtp_server.wait_for(5)) == 5
    assert len(set(smtp_server.peers)) == 1


def test_a_connection_the_server_dropped_is_replaced_without_losing_the_email(
    smtp_server,
) -> None:
    mailer = SmtpMailer(smtp_server.url)
    mailer.send(_mail(to="first@example.com"))
    smtp_server.wait_for(1)
    smtp_server.restart()
    mailer.send(_mail(to="second@example.com"))
    first, second = smtp_server.wait_for(2)
    assert (first["To"], second["To"]) == ("first@example.com", "second@example.com")
    assert len(set(smtp_server.peers)) == 2


def test_embedded_mode_writes_a_readable_eml_per_message_id(tmp_path) -> None:
    FileMailer(tmp_path).send(_mail())
    FileMailer(tmp_path).send(_mail())  # a retry overwrites the same file
    [written] = list(tmp_path.iterdir())
    assert written.name == "e1.h.eml"
    assert _parse(written.read_bytes())["Subject"] == "Welcome"


@pytest.mark.parametrize("server", ["smtp_server", "plain_smtp_server"])
def test_pipelined_or_not_the_same_bytes_arrive(server: str, request) -> None:
    sink = request.getfixturevalue(server)
    text = "A line.\n.starts with a dot\n..and two\n."
    mailer = SmtpMailer(sink.url)
    mailer.send(_mail(text=text))
    mailer.send(_mail(to="second@example.com", text=text))
    first, second = sink.wait_for(2)
    assert first.get_body(("plain",)).get_content() == text
    assert str(second["To"]) == "second@example.com"
    assert len(set(sink.peers)) == 1


@pytest.mark.parametrize("server", ["smtp_server", "plain_smtp_server"])
def test_a_refused_recipient_raises_and_the_connection_stays_usable(server: str,
                                                                    request) -> None:
    import smtplib

    sink = request.getfixturevalue(server)
    mailer = SmtpMailer(sink.url)
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        mailer.send(_mail(to="no-domain@"))  # the server refuses the address's syntax
    mailer.send(_mail(to="after@example.com"))
    [received] = sink.wait_for(1)
    assert str(received["To"]) == "after@example.com"
