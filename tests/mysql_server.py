"""Pytest fixtures for a real MySQL trial store: one private MariaDB server per test session.

The server (benchmarks/mariadb.py, shared with the proposal-cost benchmark) runs on a temporary data
directory on 127.0.0.1; each test gets a database of its own on it. Without mariadbd these fixtures fail
rather than skip: CI installs mariadb-server (.ci/run), and a skipped MySQL test would hide that the
cluster's backend went untested.
"""
from __future__ import annotations

import itertools

import pytest

from benchmarks.mariadb import MariaDB

_databases = itertools.count()


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory):
    """The session's MariaDB server (benchmarks.mariadb.MariaDB), stopped when the session ends."""
    with MariaDB(str(tmp_path_factory.mktemp("mariadb"))) as server:
        yield server


@pytest.fixture
def mysql_store_config(mariadb) -> dict:
    """A trial-store config for a fresh, empty database on the session's MariaDB server."""
    return mariadb.store_config(f"test_{next(_databases)}")


@pytest.fixture(params=["sqlite", pytest.param("mariadb", marks=pytest.mark.cluster)])
def store_config(request, tmp_path) -> dict:
    """A fresh trial store on each backend: SQLite (local runs) and MariaDB (the cluster's MySQL)."""
    if request.param == "sqlite":
        return {"sqlite": str(tmp_path / "trials.sqlite")}
    return request.getfixturevalue("mysql_store_config")


def pytest_collection_modifyitems(items):
    """Every test on the real MySQL is a cluster-path test (`uv run pytest -m cluster`): the cluster's backend."""
    for item in items:
        if "mariadb" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)
