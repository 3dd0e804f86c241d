"""Guarded services whose ``/predict`` BentoML answers through its own API dispatch, for tests/e2e/test_routes.py:
the guard's direct route (guarded_serving.service._DirectPredict) steps aside for each of them.

* ``cors``: CORS on, so its headers come back on every answer;
* ``stamped``: a middleware added after ``guard()``, which must still see every request;
* ``traced``: ``tracing=`` given, so that BentoML's trace headers come back.
"""

from __future__ import annotations

from typing import Any

from guarded_serving import guard
from tests.apps.toy import REFERENCE, toy_predict

ORIGIN = "http://allowed.test"

cors = guard(
    toy_predict,
    reference=REFERENCE,
    name="toy-cors",
    http={"cors": {"enabled": True, "access_control_allow_origins": [ORIGIN]}},
)
traced = guard(toy_predict, reference=REFERENCE, name="toy-traced", tracing={"sample_rate": 1.0})
prefixed = guard(toy_predict, reference=REFERENCE, name="toy-prefixed", path_prefix="/v1")


class Stamp:
    """Adds ``X-Stamp: seen`` to every answer."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def stamped(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-stamp", b"seen")]
            await send(message)

        await self.app(scope, receive, stamped)


stamped = guard(toy_predict, reference=REFERENCE, name="toy-stamped")
stamped.add_asgi_middleware(Stamp)
