"""`next=` targets: only paths on this site, judged the way a browser will read them."""

from __future__ import annotations

import pytest

from web.redirects import safe_next_path

# Each of these, put in a Location header, takes a browser to another host or a script.
ELSEWHERE = [
    "//evil.example", "///evil.example", "/\\evil.example", "\\\\evil.example",
    "/\t/evil.example", "/\n/evil.example", "/\r\n/evil.example", "\t//evil.example",
    " //evil.example", "\x00//evil.example", "/\x00/evil.example",
    "https://evil.example/", "http:evil.example", "javascript:alert(1)", "evil.example",
    "/%2F/", "", "   ", None, 5, ["/x"], "/" + "a" * 3000,
]


@pytest.mark.parametrize("target", ELSEWHERE)
def test_anything_that_leaves_the_site_is_refused(target):
    result = safe_next_path(target)
    if target == "/%2F/":  # an encoded slash stays a path segment on this site
        assert result == "/%2F/"
    else:
        assert result is None


@pytest.mark.parametrize(("target", "expected"), [
    ("/therapist", "/therapist"),
    ("/therapist?tab=clients&page=2", "/therapist?tab=clients&page=2"),
    ("/onboarding/terms#accept", "/onboarding/terms#accept"),
    ("  /dashboard\n", "/dashboard"),
    ("/clients/Zoë Ü", "/clients/Zo%C3%AB%20%C3%9C"),
])
def test_paths_on_this_site_are_kept_and_made_header_safe(target, expected):
    assert safe_next_path(target) == expected
