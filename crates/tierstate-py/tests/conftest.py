"""What the tests share: one store per backend (SQLite, redb, PostgreSQL from
TEST_DATABASE_URL, skipped with the reason when it is not set unless CI requires it)."""

from __future__ import annotations

import os
import uuid

import pytest

BACKENDS = ["sqlite", "redb", "postgres"]


def pg_base() -> str | None:
    url = os.environ.get("TEST_DATABASE_URL")
    if url is None and os.environ.get("TIERSTATE_REQUIRE_POSTGRES"):
        pytest.fail("TEST_DATABASE_URL is required here (cargo xtask test sets it)")
    return url


def url_for(backend: str, tmp_path) -> str:
    if backend == "sqlite":
        return f"sqlite:{tmp_path / 't.db'}"
    if backend == "redb":
        return f"redb:{tmp_path / 't.redb'}"
    base = pg_base()
    if base is None:
        pytest.skip("TEST_DATABASE_URL is not set (cargo xtask test starts a server)")
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}schema=py_{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=BACKENDS)
def url(request, tmp_path) -> str:
    return url_for(request.param, tmp_path)
