"""The whole platform in the test process: app, in-process worker, real SMTP server."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage

import sqlalchemy as sa
from flask import Flask

from core.db import Database
from core.scoping import system_session
from tests.support.smtp import SmtpSink
from tests.support.workers import EmbeddedWorker


@dataclass
class Platform:
    app: Flask
    smtp: SmtpSink
    worker: EmbeddedWorker
    db: Database

    def client(self):
        return self.app.test_client()

    def settle(self) -> None:
        """Let every side effect of what happened so far run."""
        self.worker.drain()

    def mail_to(self, address: str, count: int = 1) -> list[EmailMessage]:
        self.settle()
        messages = self.smtp.to(address)
        assert len(messages) >= count, f"expected {count} e-mail(s) to {address}, got " \
            f"{[m['Subject'] for m in messages]}"
        return messages

    def last_mail_to(self, address: str) -> EmailMessage:
        return self.mail_to(address)[-1]

    def rows(self, model, *where) -> list:
        with system_session(self.db) as session:
            return list(session.execute(sa.select(model).where(*where)).scalars())

    def count(self, model, *where) -> int:
        return len(self.rows(model, *where))
