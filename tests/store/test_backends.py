"""Choosing a store from what the user wrote (``db=``, ``GUARDED_SERVING_DB``, ``--db``), and its options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from guarded_serving import ConfigurationError, GuardedModel, Monitor
from guarded_serving.store import StoreOptions, open_reader, open_store
from guarded_serving.store.sqlite import SqliteStore
from tests.fixtures.data import gaussian

TRAINING = gaussian(200, 2, seed=3)


@pytest.mark.parametrize("db", [None, ":memory:", "sqlite:///:memory:"], ids=["none", "memory", "memory-url"])
def test_no_store_is_opened_for_none_or_memory(db: str | None) -> None:
    assert open_store(db) is None


@pytest.mark.parametrize(
    ("written", "path"),
    [
        ("log.db", "log.db"),
        ("data/log.db", "data/log.db"),
        ("sqlite:///data/log.db", "data/log.db"),
        ("sqlite:////var/lib/app/log.db", "/var/lib/app/log.db"),
        ("SQLite:///log.db", "log.db"),
    ],
    ids=["file", "relative-path", "relative-url", "absolute-url", "scheme-in-any-case"],
)
def test_a_path_or_a_sqlite_url_opens_a_sqlite_store_at_that_path(written: str, path: str) -> None:
    store = open_store(written)

    assert isinstance(store, SqliteStore)
    assert store.path == path


def test_a_path_object_is_a_sqlite_file(tmp_path: Path) -> None:
    store = open_store(tmp_path / "log.db")

    assert isinstance(store, SqliteStore)
    assert store.path == str(tmp_path / "log.db")


def test_the_options_reach_the_store() -> None:
    options = StoreOptions(flush_interval=1.5, max_rows=10)

    store = open_store("log.db", options)

    assert store is not None
    assert store.options is options


@pytest.mark.parametrize(
    "url",
    ["mysql://guard@localhost/logs", "postgresql+asyncpg://localhost/logs", "s3://bucket/log.db"],
    ids=["mysql", "sqlalchemy-dialect", "s3"],
)
def test_an_unsupported_scheme_names_the_value_and_what_is_supported(url: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        open_store(url)

    assert raised.value.argument == "db"
    assert raised.value.got == url
    assert "a SQLite file path or a sqlite:///path URL, or a postgresql:// URL, or None (or ':memory:') for no store" in str(
        raised.value
    )
    assert f"scheme {url.split(':')[0]!r} is not supported" in str(raised.value)


def test_a_password_in_an_unsupported_url_is_not_repeated_in_the_error() -> None:
    with pytest.raises(ConfigurationError) as raised:
        open_store("mysql://guard:s3cret@localhost:3306/logs")

    assert "s3cret" not in str(raised.value)
    assert raised.value.got == "mysql://guard:***@localhost:3306/logs"


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite://log.db"], ids=["no-path", "root", "two-slashes"])
def test_a_sqlite_url_without_a_path_is_refused(url: str) -> None:
    with pytest.raises(ConfigurationError, match="sqlite:/// then the file's path"):
        open_store(url)


def test_a_monitor_refuses_an_unsupported_store_url_when_it_is_made() -> None:
    with pytest.raises(ConfigurationError, match="scheme 'mysql' is not supported"):
        Monitor(TRAINING, db="mysql://localhost/logs")


def test_a_guarded_model_refuses_an_unsupported_store_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUARDED_SERVING_DB", "mysql://localhost/logs")

    with pytest.raises(ConfigurationError, match="scheme 'mysql' is not supported"):
        GuardedModel(lambda rows: np.zeros(len(rows)), reference=TRAINING, name="m")


def test_a_monitor_logs_to_a_sqlite_url(tmp_path: Path) -> None:
    with Monitor(TRAINING, db=f"sqlite:///{tmp_path / 'log.db'}") as monitor:
        monitor.observe(TRAINING[:10], TRAINING[:10].sum(axis=1))
        assert monitor.flush()
        totals = monitor.totals()

    assert (totals.requests, totals.rows) == (1, 10)
    assert (tmp_path / "log.db").is_file()


def test_a_reader_needs_a_store_to_read() -> None:
    with pytest.raises(ConfigurationError, match="a log store to read"):
        open_reader(":memory:")


SECONDS, WHOLE = "a positive number of seconds", "a positive integer"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("flush_interval", 0, SECONDS),
        ("capacity", 0, WHOLE),
        ("capacity_bytes", 1.5, WHOLE),
        ("window", True, WHOLE),
        ("max_rows", -1, WHOLE),
        ("max_age", "1d", SECONDS),
        ("busy_timeout", float("nan"), SECONDS),
        ("overflow", "wait", "'drop' (count and drop) or 'block' (back-pressure)"),
    ],
    ids=["flush_interval", "capacity", "capacity_bytes", "window", "max_rows", "max_age", "busy_timeout", "overflow"],
)
def test_store_options_name_a_bad_value_and_what_was_expected(name: str, value: Any, expected: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        StoreOptions(**{name: value})

    assert str(raised.value) == f"{name}: expected {expected}, got {value!r}"


def test_store_options_leave_retention_off_by_default() -> None:
    options = StoreOptions()

    assert (options.max_rows, options.max_age) == (None, None)
