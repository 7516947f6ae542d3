"""What a person does in the browser, done with the Flask test client (plus e-mail links)."""

from __future__ import annotations

import re
from email.message import EmailMessage
from urllib.parse import urlsplit

PASSWORD = "correct horse battery staple"


# Logged-in pages carry the token in a meta tag (for JSON calls); forms carry it in a hidden
# field. Anonymous pages without a form carry none (they set no cookie).
CSRF_TOKEN = re.compile(r'<meta name="csrf-token" content="([^"]+)"'
                        r'|<input[^>]*name="csrf_token"[^>]*value="([^"]+)"')


def csrf_token(client, path: str = "/login") -> str:
    """The token on `path`; else (a logged-in client sent away from /login) the home page's."""
    match = CSRF_TOKEN.search(client.get(path).get_data(as_text=True))
    if match is None and path != "/":
        match = CSRF_TOKEN.search(client.get("/").get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1) or match.group(2)


def post_form(client, path: str, data: dict, *, page: str | None = None, **kwargs):
    token = csrf_token(client, page or path)
    return client.post(path, data={"csrf_token": token, **data}, **kwargs)


def link_in(message: EmailMessage, path_prefix: str) -> str:
    """The path of the first link in the e-mail's text part that starts with `path_prefix`."""
    text = message.get_body(("plain",)).get_content()
    for url in re.findall(r"https?://\S+", text):
        path = urlsplit(url).path
        if path.startswith(path_prefix):
            return path
    raise AssertionError(f"no {path_prefix} link in:\n{text}")


def mail_titled(platform, address: str, subject: str):
    """The e-mail to `address` with that subject, once every side effect so far has run (two
    e-mails from two events may arrive in either order: the workers run side by side)."""
    platform.settle()
    found = [m for m in platform.smtp.to(address) if m["Subject"] == subject]
    assert found, f"no {subject!r} e-mail to {address}; got " \
        f"{[m['Subject'] for m in platform.smtp.to(address)]}"
    return found[-1]


def session_cookie(client) -> str | None:
    cookie = client.get_cookie("session")
    return cookie.value if cookie else None


def signup_therapist(client, *, email: str, practice: str = "Harbour Counselling",
                     name: str = "Dr Ada Lovelace", password: str = PASSWORD):
    return post_form(client, "/signup", {"practice_name": practice, "display_name": name,
                                         "email": email, "password": password})


def confirm(client, path: str):
    """Open an e-mailed confirmation link and press its button."""
    assert client.get(path).status_code == 200
    return post_form(client, path, {}, page=path)


def login(client, email: str, password: str = PASSWORD):
    return post_form(client, "/login", {"email": email, "password": password}, page="/login")


def logout(client):
    return post_form(client, "/logout", {}, page="/")


PERSONAL_INFO = {"full_name": "Ada Lovelace", "phone": "+44 20 7946 0958",
                 "time_zone": "Europe/London", "preferred_language": "en"}
PROFESSIONAL_INFO = {"licence_number": "HCPC-PYL12345", "licence_jurisdiction": "HCPC (UK)",
                     "specialties": ["anxiety", "trauma"], "years_in_practice": "7",
                     "practice_display_name": "Harbour Counselling"}
TERMS = {"accept_terms": "on", "accept_privacy": "on"}


def onboarding_version(client, slug: str) -> str:
    html = client.get(f"/onboarding/{slug}").get_data(as_text=True)
    match = re.search(r'name="version" value="(\d+)"', html)
    assert match, f"no onboarding form at /onboarding/{slug}"
    return match.group(1)


def onboarding_step(client, slug: str, data: dict, action: str = "continue"):
    version = onboarding_version(client, slug)
    return post_form(client, f"/onboarding/{slug}",
                     {**data, "version": version, "action": action},
                     page=f"/onboarding/{slug}")


def complete_onboarding(client, role: str = "therapist") -> None:
    steps = [("started", {}), ("personal-info", PERSONAL_INFO)]
    if role == "therapist":
        steps.append(("professional-info", PROFESSIONAL_INFO))
    steps.append(("terms", TERMS))
    for slug, data in steps:
        response = onboarding_step(client, slug, data)
        assert response.status_code == 302, (slug, response.status_code,
                                             response.get_data(as_text=True)[-2000:])
