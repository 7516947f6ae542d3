"""/dev/mail exists only where it is safe: development, mail written as files, this machine."""

from __future__ import annotations

from core.adapters.mail import FileMailer, describe_for_log
from core.adapters.mime import build_mail
from tests.conftest import make_settings
from tests.support.apps import make_app


def _mail(to: str = "ada@harbour.example"):
    return build_mail(sender="Practice Platform <no-reply@practice.localhost>", to=to,
                      subject="Confirm your e-mail address",
                      date="Sun, 29 Nov 2026 20:00:00 +0000", message_id="<abc.verify@x>",
                      text="Open this link:\n\nhttp://127.0.0.1:5000/verify-email/T0KEN\n",
                      html='<p><a href="http://127.0.0.1:5000/verify-email/T0KEN">Go</a></p>')


def _app(db, database_url, tmp_path, **overrides):
    settings = make_settings(database_url, tmp_path, **{"app_env": "development", **overrides})
    return make_app(settings, db)


def test_development_shows_each_e_mail_with_its_links(db, database_url, tmp_path):
    FileMailer(tmp_path / "mail").send(_mail())
    client = _app(db, database_url, tmp_path).test_client()
    listing = client.get("/dev/mail")
    assert listing.status_code == 200
    html = listing.get_data(as_text=True)
    assert "Confirm your e-mail address" in html and "ada@harbour.example" in html
    letter = client.get("/dev/mail/abc.verify").get_data(as_text=True)
    assert ('<a href="http://127.0.0.1:5000/verify-email/T0KEN">'
            'http://127.0.0.1:5000/verify-email/T0KEN</a>') in letter
    assert client.get("/dev/mail/..%2Fsecret_key").status_code == 404
    assert client.get("/dev/mail/no-such-mail").status_code == 404


def test_production_has_no_dev_mail(db, database_url, tmp_path):
    FileMailer(tmp_path / "mail").send(_mail())
    app = _app(db, database_url, tmp_path, app_env="production")
    assert app.test_client().get("/dev/mail").status_code == 404
    assert app.test_client().get("/dev/mail/abc.verify").status_code == 404


def test_no_dev_mail_when_mail_goes_to_a_server_or_for_another_machine(db, database_url,
                                                                      tmp_path):
    FileMailer(tmp_path / "mail").send(_mail())
    with_smtp = _app(db, database_url, tmp_path, smtp_url="smtp://127.0.0.1:2525")
    assert with_smtp.test_client().get("/dev/mail").status_code == 404
    remote = _app(db, database_url, tmp_path).test_client()
    assert remote.get("/dev/mail", environ_base={"REMOTE_ADDR": "192.0.2.7"}).status_code == 404


def test_the_log_line_of_an_e_mail_names_recipient_subject_and_links(tmp_path):
    line = describe_for_log(_mail(), tmp_path / "abc.eml")
    assert line.startswith('e-mail to ada@harbour.example: "Confirm your e-mail address"')
    # A terminal opens a clicked link up to the next space: nothing may cling to it.
    assert line.endswith(" link: http://127.0.0.1:5000/verify-email/T0KEN")
    assert "\n" not in line


def test_links_reach_the_log_in_development_only(tmp_path, caplog):
    with caplog.at_level("INFO", logger="core.adapters.mail"):
        FileMailer(tmp_path / "dev", log_links=True).send(_mail())
        FileMailer(tmp_path / "prod").send(_mail())
    development, production = (r.getMessage() for r in caplog.records)
    assert "/verify-email/T0KEN" in development
    assert "T0KEN" not in production
