"""The OpenAPI document names every /api/ route the app serves, and is valid OpenAPI 3.1.

`make proof` checks the live server's answers against it with schemathesis; this keeps the
document from falling behind the routes between runs."""

from __future__ import annotations

import re

from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from web.openapi import DOCUMENT

IGNORED_METHODS = {"HEAD", "OPTIONS"}


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def test_every_api_route_is_in_the_document(app):
    served = {(_openapi_path(rule.rule), method.lower())
              for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/")
              for method in rule.methods - IGNORED_METHODS}
    documented = {(path, method) for path, item in DOCUMENT["paths"].items()
                  for method in item}
    assert served - documented == set(), "routes the document does not describe"
    assert documented - served == set(), "operations the app does not serve"


def test_the_document_is_valid_openapi_3_1():
    assert DOCUMENT["openapi"].startswith("3.1.")
    try:
        validate(DOCUMENT)
    except OpenAPIValidationError as error:
        raise AssertionError(f"invalid OpenAPI: {error}") from None


def test_the_document_is_served(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.get_json() == DOCUMENT
    assert response.headers["Content-Security-Policy"]


def test_operations_that_change_state_ask_for_the_csrf_header():
    for item in DOCUMENT["paths"].values():
        for method, operation in item.items():
            if method in ("post", "put", "patch", "delete"):
                assert all("csrf" in alternative for alternative in operation["security"]), (
                    operation["operationId"])
