"""Connections to a PostgreSQL store: explicit transactions, synchronous commit, masked URLs."""

from __future__ import annotations

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow

from relay.model.urls import redact_url

# Seconds to wait for the server to answer a connection attempt, unless the URL names its own
# connect_timeout: a store that cannot be reached must fail visibly, not hang the relay.
CONNECT_TIMEOUT = 10


def connect(url: str) -> psycopg.Connection[TupleRow]:
    """A connection to ``url`` (``postgresql://user:password@host:port/dbname?...``) with
    autocommit off, so every statement runs in a transaction the caller commits, and
    ``synchronous_commit = on``, so a commit returns only once its WAL is flushed to disk:
    a 2xx after commit promises the conversation survives a crash of the server."""
    conninfo = url
    if "connect_timeout" not in conninfo_to_dict(url):
        conninfo = make_conninfo(url, connect_timeout=CONNECT_TIMEOUT)
    connection = psycopg.connect(conninfo, autocommit=False)
    try:
        # A session setting, not a startup option: it keeps any ``options`` the URL carries,
        # and a server or role default of ``off`` cannot weaken the promise.
        connection.execute("SET synchronous_commit = on")
        connection.commit()
    except BaseException:
        connection.close()
        raise
    return connection


def redacted(url: str) -> str:
    """``url`` as shown in logs, errors and the CLI: its password (in the userinfo or as a
    ``password=`` parameter) and other credential-like parameters replaced by ``***``."""
    return redact_url(url)
