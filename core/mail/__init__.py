"""E-mail: templates rendered to text + HTML parts, sent over SMTP or written to .eml files."""

from core.mail.mailer import FileMailer, Mailer, SmtpMailer, build_mailer
from core.mail.render import compose

__all__ = ["FileMailer", "Mailer", "SmtpMailer", "build_mailer", "compose"]
