"""Redacted features are never written and never shown: a canary value sent in one reaches no sink.

Sinks: every table of the log store (and the bytes of its files), the service's stdout/stderr, `/metrics`,
`/health/model` (JSON and the dashboard), the history, `guarded-serving report` and `tail`, and the bodies
of error answers. What is withheld is still named: the row, the feature, the error class, the expected shape.
The canary sent to a real `bentoml serve` is tests/e2e/test_redaction.py.
"""

from __future__ import annotations

import json
import sqlite3
import struct
import warnings
from pathlib import Path
from typing import Any

import pytest

from guarded_serving import GuardedModel, InputError, Monitor, Reference
from guarded_serving.redaction import WITHHELD, redacted_input_error, redacted_reference
from guarded_serving.store import RequestRecord
from tests.apps.faults import PRIVATE_FEATURES, PRIVATE_TRAINING, TRAINING_CANARY_CITY, private_predict

SSN_CANARY = 987654321.5  # a valid value of the redacted numeric feature
CITY_CANARY = "REQ-CANARY-CITY"  # an unseen category of the redacted categorical feature
WRONG_TYPE_CANARY = "123-45-6789"  # a string where the redacted numeric feature wants a number
CANARY_TEXTS = (str(SSN_CANARY), CITY_CANARY, WRONG_TYPE_CANARY, TRAINING_CANARY_CITY)
CANARY_BYTES = (*(c.encode() for c in CANARY_TEXTS), struct.pack("<d", SSN_CANARY))


def leaks(text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [repr(c) for c in CANARY_BYTES if c in data]


def private_row(age: float = 41.0) -> list[Any]:
    return [age, SSN_CANARY, CITY_CANARY, 52.0]


@pytest.fixture(scope="module")
def private_reference() -> Reference:
    return Reference.from_data(PRIVATE_TRAINING, feature_names=PRIVATE_FEATURES, categorical=["city"])


# -- units -------------------------------------------------------------------------------------------------------------


def test_a_redacted_reference_keeps_no_value_of_a_redacted_feature(private_reference: Reference) -> None:
    redacted = redacted_reference(private_reference, {"ssn", "city"})
    document = json.dumps(redacted.to_json())

    by_name = {f.name: f for f in redacted.features}
    assert (by_name["ssn"].sample, by_name["ssn"].edges, by_name["ssn"].minimum, by_name["ssn"].mean) == ((), (), None, None)
    assert by_name["city"].categories == ()
    assert by_name["age"] == private_reference.features[0]  # the others are whole
    assert leaks(document) == []
    assert redacted.extra["redacted"] == ["city", "ssn"]
    assert redacted.row_sample is not None
    assert redacted.row_sample.names == tuple(n for n in PRIVATE_FEATURES if n not in ("ssn", "city"))


def test_a_problem_in_a_redacted_feature_names_the_row_and_feature_but_not_the_value() -> None:
    error = InputError([_problem(f'got "{WRONG_TYPE_CANARY}"', "a number", 3, "ssn"), _problem("got 'x'", "a number", 4, "age")])

    redacted = redacted_input_error(error, {"ssn"})

    assert redacted.status == error.status
    assert str(redacted.problems[0]) == f"row 3, feature 'ssn': {WITHHELD}; expected a number"
    assert redacted.problems[1] == error.problems[1]
    assert leaks(str(redacted)) == []


def _problem(problem: str, expected: str, row: int, feature: str) -> Any:
    from guarded_serving.errors import Problem

    return Problem(problem, expected, row=row, feature=feature)


def test_the_models_table_holds_the_redacted_reference(private_reference: Reference, tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with Monitor(private_reference, db=db, redact=["ssn", "city"]) as monitor:
        monitor.flush()

    (document,) = sqlite3.connect(db).execute("SELECT reference FROM models").fetchone()
    assert leaks(document) == []
    assert Reference.from_json(json.loads(document)) == redacted_reference(private_reference, {"ssn", "city"})


def test_warning_messages_are_withheld_when_a_feature_is_redacted(private_reference: Reference, tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.warn(f"bad input {CITY_CANARY}", DeprecationWarning, stacklevel=1)
    from guarded_serving.environment import WarningRecord

    warning = WarningRecord("DeprecationWarning", str(caught[0].message), "model.py:9", 1)
    with Monitor(private_reference, db=db, redact=["city"]) as monitor:
        monitor.record(
            RequestRecord("r1", 1.0, "model", None, "ok", 1, 1.0, inputs=[private_row()], outputs=[0.9], warnings=(warning,))
        )
        monitor.flush()
        report = monitor.health()

    assert sqlite3.connect(db).execute("SELECT category, message, location FROM warnings").fetchall() == [
        ("DeprecationWarning", WITHHELD, "model.py:9")
    ]
    assert leaks(json.dumps(report.to_json())) == []


def test_a_model_error_message_is_withheld_when_a_feature_is_redacted(private_reference: Reference, tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    guarded = GuardedModel(private_predict, reference=private_reference, name="p", db=db, redact=["ssn", "city"])
    reply = guarded.handle_predict(json.dumps({"rows": [private_row(age=999)]}).encode(), "application/json")
    guarded.close()

    assert reply.status == 500
    assert sqlite3.connect(db).execute("SELECT status, error FROM requests").fetchall() == [("error", f"ValueError: {WITHHELD}")]


def test_without_redaction_a_model_error_message_is_kept(private_reference: Reference, tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    guarded = GuardedModel(private_predict, reference=private_reference, name="p", db=db)
    guarded.handle_predict(json.dumps({"rows": [private_row(age=999)]}).encode(), "application/json")
    guarded.close()

    (error,) = sqlite3.connect(db).execute("SELECT error FROM requests").fetchone()
    assert error.startswith("ValueError: cannot score rows [[999, 987654321.5, 'REQ-CANARY-CITY', 52.0]]")


# -- every sink of a running service (the property) --------------------------------------------------------------------
