"""Inputs beyond rows of scalars: a kind parses them, describes each row for the drift engine, logs them.

kind.py        InputKind (the protocol), KindFactory, Batch, parse_batch()
registry.py    the kinds there are: kind_for() (by name or by the training data), kind_of_reference(), register()
profile.py     kind_reference(): a reference of a kind's training inputs (descriptors, outputs)
descriptors.py TextDescriptors: per-text numbers and a token draw, and how their drift is worded
text.py        the text kind (a string per row; the model gets a list of strings)
mixed.py       the mixed kind (named fields, some free text; the model gets the rows as trained)
report.py      worded(): a data drift check's findings in a kind's own words
shaped.py      ArrayRows: rows of one fixed shape and element type, parsed, checked (422 naming the row), logged
projection.py  RandomProjection: a fixed seeded projection of a flattened row to a few coordinates
arrays.py      TensorSummary: per-row mean, spread, saturation, edges and projection of a tensor
embeddings.py  EmbeddingSummary: an embedding's coordinates (or projection), norm and Mahalanobis distance
tensor.py      the tensor kind (a fixed-shape array per row; the model gets them stacked)
embedding.py   the embedding kind (a vector per row, by input_format="embedding")
"""

from .kind import KIND_KEY, Batch, InputKind, KindFactory, parse_batch, withheld_descriptors
from .profile import kind_reference
from .registry import kind_for, kind_names, kind_of_reference, redacted_kind, register
from .report import worded

__all__ = [
    "KIND_KEY",
    "Batch",
    "InputKind",
    "KindFactory",
    "kind_for",
    "kind_names",
    "kind_of_reference",
    "kind_reference",
    "parse_batch",
    "redacted_kind",
    "register",
    "withheld_descriptors",
    "worded",
]
