"""Library drift: package fingerprints and their diff, and the deprecation warnings a model raises."""

from __future__ import annotations

import inspect
import platform
import threading
import warnings
from types import MappingProxyType

import numpy as np
import pytest

from guarded_serving.environment import (
    Fingerprint,
    PackageChange,
    WarningLog,
    WarningRecord,
    capture_warnings,
    current_fingerprint,
    diff_environment,
)


def raise_warning(category: type[Warning], message: str) -> str:
    """Raise a warning and return the location it is recorded at."""
    frame = inspect.currentframe()
    assert frame is not None
    line = frame.f_lineno + 1
    warnings.warn(message, category, stacklevel=1)
    return f"{__file__}:{line}"


@pytest.fixture
def validated() -> Fingerprint:
    """The environment a model was validated in."""
    return Fingerprint(
        python="3.11.7",
        platform="linux-x86_64",
        packages={"numpy": "1.0.0", "joblib": "1.3.0", "scikit-learn": "1.4.0", "scipy": "1.11.0"},
    )


@pytest.fixture
def serving() -> Fingerprint:
    """The environment serving it: numpy and scikit-learn upgraded, joblib gone, two packages added."""
    return Fingerprint(
        python="3.11.7",
        platform="linux-x86_64",
        packages={"numpy": "2.4.6", "scikit-learn": "1.9.1", "scipy": "1.11.0", "pandas": "3.1.1", "httpx": "0.28.0"},
    )


# --- diff_environment ---------------------------------------------------------------------------------------------


def test_diff_lists_changed_packages_by_name(validated: Fingerprint, serving: Fingerprint) -> None:
    diff = diff_environment(validated, serving)

    assert diff.changed == (PackageChange("numpy", "1.0.0", "2.4.6"), PackageChange("scikit-learn", "1.4.0", "1.9.1"))


def test_diff_lists_missing_packages(validated: Fingerprint, serving: Fingerprint) -> None:
    assert diff_environment(validated, serving).missing == (PackageChange("joblib", "1.3.0", None),)


def test_diff_only_counts_added_packages(validated: Fingerprint, serving: Fingerprint) -> None:
    assert diff_environment(validated, serving).added == 2


def test_diff_of_the_same_python_has_no_python_change(validated: Fingerprint, serving: Fingerprint) -> None:
    assert diff_environment(validated, serving).python is None


def test_diff_names_both_pythons_when_python_changed(validated: Fingerprint) -> None:
    newer = Fingerprint(python="3.12.4", platform=validated.platform, packages=validated.packages)

    diff = diff_environment(validated, newer)

    assert diff.python == ("3.11.7", "3.12.4")
    assert diff.differs


def test_diff_of_identical_environments_does_not_differ(validated: Fingerprint) -> None:
    diff = diff_environment(validated, validated)

    assert (diff.differs, diff.changed, diff.missing, diff.added) == (False, (), (), 0)


def test_added_packages_alone_do_not_make_environments_differ(validated: Fingerprint) -> None:
    more = Fingerprint(python=validated.python, platform=validated.platform, packages={**validated.packages, "rich": "13.0"})

    diff = diff_environment(validated, more)

    assert (diff.differs, diff.added) == (False, 1)


@pytest.mark.parametrize(
    ("change", "text"),
    [
        pytest.param(PackageChange("numpy", "1.0.0", "2.4.6"), "numpy 1.0.0 -> 2.4.6", id="changed"),
        pytest.param(PackageChange("joblib", "1.3.0", None), "joblib 1.3.0 is missing", id="missing"),
    ],
)
def test_package_change_reads_as_a_sentence(change: PackageChange, text: str) -> None:
    assert str(change) == text


# --- Fingerprint ---------------------------------------------------------------------------------------------------


def test_fingerprint_survives_a_json_round_trip(validated: Fingerprint) -> None:
    assert Fingerprint.from_json(validated.to_json()) == validated


def test_fingerprint_json_lists_packages_sorted(validated: Fingerprint) -> None:
    assert list(validated.to_json()["packages"]) == ["joblib", "numpy", "scikit-learn", "scipy"]


def test_fingerprint_from_json_normalises_package_names() -> None:
    fingerprint = Fingerprint.from_json(
        {
            "python": "3.11.7",
            "platform": "linux",
            "packages": {"Scikit_Learn": "1.9.1", "zope.interface": "6.0", "typing__extensions": "4"},
        }
    )

    assert dict(fingerprint.packages) == {"scikit-learn": "1.9.1", "zope-interface": "6.0", "typing-extensions": "4"}


def test_normalised_names_match_across_spellings() -> None:
    old = Fingerprint.from_json({"python": "3.11.7", "packages": {"Scikit_Learn": "1.4.0"}})
    new = Fingerprint.from_json({"python": "3.11.7", "packages": {"scikit-learn": "1.9.1"}})

    assert diff_environment(old, new).changed == (PackageChange("scikit-learn", "1.4.0", "1.9.1"),)


def test_fingerprint_from_json_is_read_only() -> None:
    fingerprint = Fingerprint.from_json({"python": "3.11.7", "packages": {"numpy": "2.4.6"}})

    assert isinstance(fingerprint.packages, MappingProxyType)


def test_current_fingerprint_has_numpy_at_its_version() -> None:
    assert current_fingerprint().packages["numpy"] == np.__version__


def test_current_fingerprint_has_the_running_python() -> None:
    assert current_fingerprint().python == platform.python_version()


def test_current_fingerprint_is_computed_once() -> None:
    assert current_fingerprint() is current_fingerprint()


# --- capture_warnings ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("category", [DeprecationWarning, FutureWarning, PendingDeprecationWarning], ids=lambda c: c.__name__)
def test_capture_collects_watched_warnings_with_category_message_and_location(category: type[Warning]) -> None:
    with capture_warnings() as collected:
        location = raise_warning(category, "old api")

    assert collected == [WarningRecord(category.__name__, "old api", location, 1)]


@pytest.mark.parametrize("category", [DeprecationWarning, FutureWarning, PendingDeprecationWarning], ids=lambda c: c.__name__)
def test_capture_collects_a_warning_repeated_at_the_same_line(category: type[Warning]) -> None:
    with capture_warnings() as collected:
        locations = [raise_warning(category, "old api") for _ in range(3)]

    assert len(set(locations)) == 1
    assert collected == [WarningRecord(category.__name__, "old api", locations[0], 1)] * 3


def test_capture_collects_subclasses_of_watched_categories() -> None:
    class NumpyDeprecation(DeprecationWarning):
        pass

    with capture_warnings() as collected:
        raise_warning(NumpyDeprecation, "old api")

    assert [r.category for r in collected] == ["NumpyDeprecation"]


def test_capture_leaves_user_warnings_to_python() -> None:
    with pytest.warns(UserWarning, match="just so you know"), capture_warnings() as collected:
        raise_warning(UserWarning, "just so you know")

    assert collected == []


def test_capture_ignores_warnings_raised_outside_the_block() -> None:
    with pytest.warns(DeprecationWarning, match="before"):
        raise_warning(DeprecationWarning, "before")
    with capture_warnings() as collected:
        raise_warning(DeprecationWarning, "inside")
    raise_warning(DeprecationWarning, "after")

    assert [r.message for r in collected] == ["inside"]


def test_capture_keeps_at_most_16_warnings() -> None:
    with capture_warnings() as collected:
        for i in range(40):
            raise_warning(DeprecationWarning, f"old api {i}")

    assert [r.message for r in collected] == [f"old api {i}" for i in range(16)]


def test_capture_still_works_after_a_catch_warnings_block_restored_the_old_hook() -> None:
    with warnings.catch_warnings(), capture_warnings():
        pass  # the capture hook is installed inside, then removed when catch_warnings exits

    with capture_warnings() as collected:
        raise_warning(DeprecationWarning, "old api")

    assert [r.message for r in collected] == ["old api"]


def test_capture_in_eight_threads_keeps_each_threads_warnings_apart() -> None:
    threads = 8
    started = threading.Barrier(threads, timeout=10)
    warned = threading.Barrier(threads, timeout=10)
    messages: dict[int, list[str]] = {}

    def work(i: int) -> None:
        with capture_warnings() as collected:
            started.wait()  # every thread is capturing at once
            raise_warning(DeprecationWarning, f"thread {i}")
            warned.wait()  # every thread has warned before any capture ends
        messages[i] = [r.message for r in collected]

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=10)

    assert messages == {i: [f"thread {i}"] for i in range(threads)}


# --- WarningLog -----------------------------------------------------------------------------------------------------


def test_warning_log_counts_repeats_of_one_warning() -> None:
    log = WarningLog()
    for _ in range(3):
        log.record("DeprecationWarning", "old api", "model.py:10")

    assert log.snapshot() == (WarningRecord("DeprecationWarning", "old api", "model.py:10", 3),)


def test_warning_log_record_says_whether_the_warning_is_new() -> None:
    log = WarningLog()

    assert [log.record("FutureWarning", "soon", "model.py:1") for _ in range(2)] == [True, False]


def test_warning_log_adds_the_given_count() -> None:
    log = WarningLog()
    log.record("FutureWarning", "soon", "model.py:1", count=4)
    log.record("FutureWarning", "soon", "model.py:1", count=2)

    assert log.snapshot()[0].count == 6


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(("FutureWarning", "old api", "model.py:10"), id="another-category"),
        pytest.param(("DeprecationWarning", "older api", "model.py:10"), id="another-message"),
        pytest.param(("DeprecationWarning", "old api", "model.py:11"), id="another-location"),
    ],
)
def test_warning_log_keeps_warnings_apart_by_category_message_and_location(other: tuple[str, str, str]) -> None:
    log = WarningLog()
    log.record("DeprecationWarning", "old api", "model.py:10")
    log.record(*other)

    assert len(log.snapshot()) == 2


def test_warning_log_snapshot_puts_the_most_frequent_first() -> None:
    log = WarningLog()
    log.record("FutureWarning", "rare", "a.py:1")
    log.record("DeprecationWarning", "common", "b.py:2", count=5)

    assert [r.message for r in log.snapshot()] == ["common", "rare"]


def test_warning_log_keeps_at_most_capacity_warnings_and_counts_the_overflow() -> None:
    log = WarningLog(capacity=3)
    for i in range(5):
        log.record("DeprecationWarning", f"old api {i}", "model.py:1")

    assert [r.message for r in log.snapshot()] == ["old api 0", "old api 1", "old api 2"]
    assert log.overflow == 2


def test_warning_log_keeps_counting_known_warnings_when_full() -> None:
    log = WarningLog(capacity=1)
    log.record("DeprecationWarning", "old api", "model.py:1")
    log.record("DeprecationWarning", "another", "model.py:2")
    log.record("DeprecationWarning", "old api", "model.py:1")

    assert (log.snapshot()[0].count, log.overflow) == (2, 1)


def test_warning_log_footprint_stays_flat_over_many_records() -> None:
    log = WarningLog(capacity=64)
    for i in range(20_000):
        log.record("DeprecationWarning", f"old api {i % 1000}", f"model.py:{i % 7}")

    assert len(log.snapshot()) == 64
    assert sum(r.count for r in log.snapshot()) + log.overflow == 20_000


def test_warning_log_calls_on_new_once_per_new_warning() -> None:
    seen: list[WarningRecord] = []
    log = WarningLog(on_new=seen.append)
    for _ in range(3):
        log.record("DeprecationWarning", "old api", "model.py:10")
    log.record("FutureWarning", "soon", "model.py:20")

    assert seen == [
        WarningRecord("DeprecationWarning", "old api", "model.py:10", 1),
        WarningRecord("FutureWarning", "soon", "model.py:20", 1),
    ]


def test_warning_log_does_not_call_on_new_for_overflow() -> None:
    seen: list[WarningRecord] = []
    log = WarningLog(capacity=1, on_new=seen.append)
    log.record("DeprecationWarning", "old api", "model.py:10")
    log.record("DeprecationWarning", "another", "model.py:11")

    assert [r.message for r in seen] == ["old api"]


def test_warning_log_counts_every_record_from_eight_threads() -> None:
    log = WarningLog()

    def work() -> None:
        for _ in range(1000):
            log.record("DeprecationWarning", "old api", "model.py:10")

    workers = [threading.Thread(target=work) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=10)

    assert log.snapshot()[0].count == 8000
