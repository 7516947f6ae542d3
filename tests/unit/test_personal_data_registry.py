"""Every table that can hold a person's data is in the personal-data registry (so the export
carries it and the erasure reaches it), or is named as holding none, with the reason."""

from __future__ import annotations

import re

import core.models  # noqa: F401 - every model, so Base.metadata is complete
from core.db import Base
from core.privacy.registry import NOT_PERSONAL, REGISTRY

# Column names that suggest personal data.
PERSONAL_LOOKING = re.compile(
    r"email|name|phone|(^|_)ip$|user_agent|answers|^data$|payload|metadata|subject|reason"
    r"|title|body|_error$|filters|identity_id|account_id")


def _personal_looking() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for table in Base.metadata.sorted_tables:
        columns = {c.name for c in table.columns if PERSONAL_LOOKING.search(c.name)}
        if columns:
            found[table.name] = columns
    return found


def test_every_table_with_personal_looking_columns_is_registered_or_explained() -> None:
    registered = {entry.table for entry in REGISTRY}
    unaccounted = sorted(set(_personal_looking()) - registered - set(NOT_PERSONAL))
    assert unaccounted == [], (
        f"tables with personal-looking columns missing from core/privacy/registry.py: "
        f"{unaccounted} (register them with how they are exported and erased, or say in "
        "NOT_PERSONAL why they hold nobody's data)")


def test_the_registry_names_real_tables_and_columns_once() -> None:
    tables = Base.metadata.tables
    assert len({entry.table for entry in REGISTRY}) == len(REGISTRY)
    for entry in REGISTRY:
        assert entry.table in tables, entry.table
        assert set(entry.columns) <= set(tables[entry.table].columns.keys()), entry.table
        assert entry.table not in NOT_PERSONAL
    assert set(NOT_PERSONAL) <= set(tables)


def test_a_new_personal_looking_table_would_be_caught() -> None:
    import sqlalchemy as sa

    metadata = sa.MetaData()
    sa.Table("patient_notes", metadata, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("client_phone", sa.String))
    columns = {c.name for c in metadata.tables["patient_notes"].columns
               if PERSONAL_LOOKING.search(c.name)}
    assert columns == {"client_phone"}
