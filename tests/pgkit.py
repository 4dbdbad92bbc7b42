"""PostgreSQL for tests (importable as `pgkit`): each test gets a schema of its own on the server named by
FAPIAO_TEST_DATABASE_URL, dropped afterwards; without that variable PostgreSQL tests are skipped.

.ci/run starts a throwaway server on 127.0.0.1 and sets the variable (.ci/postgres); by hand:
`eval "$(.ci/postgres $$)"` in a shell, then run pytest from that shell.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine

from agent.ledger import database_location

TEST_DATABASE_ENV = "FAPIAO_TEST_DATABASE_URL"
SKIP_REASON = (
    f"PostgreSQL not configured: set {TEST_DATABASE_ENV}=postgresql+psycopg://USER:PASSWORD@127.0.0.1:PORT/DB "
    "(.ci/run starts a throwaway server and sets it; by hand: eval \"$(.ci/postgres $$)\")"
)


def server_url() -> str:
    """The test server's URL; skips the test when there is none."""
    url = os.environ.get(TEST_DATABASE_ENV, "")
    if not url:
        pytest.skip(SKIP_REASON)
    return url


@contextlib.contextmanager
def own_schema(server: str) -> Iterator[str]:
    """A database_url whose tables live in a new, empty schema of that server; the schema is dropped after."""
    url, schema = database_location(server), f"test_{uuid.uuid4().hex[:16]}"
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
        yield url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
        with engine.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    finally:
        engine.dispose()


def engine_for(database_url: str) -> Engine:
    """An engine of our own on the same database and schema, as another tool (or another worker) would have."""
    return create_engine(database_location(database_url))
