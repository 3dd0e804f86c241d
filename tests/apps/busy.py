"""Guarded toy services for the load tests: the default request and buffer limits, and a small buffer.

Served with `bentoml serve tests.apps.busy:<name>`; the toy model (tests/apps/toy.py) sums each row.
"""

from guarded_serving import guard

from .toy import REFERENCE, toy_predict

# Every limit at its default: 1,000 rows per request, a buffer of 100,000 rows and 64 MiB.
default = guard(toy_predict, reference=REFERENCE, name="toy-busy")

# A buffer that holds one 1,000-row request: under concurrent load the writer is always behind it.
small_buffer = guard(toy_predict, reference=REFERENCE, name="toy-small-buffer", store_capacity=1000)
