"""Text descriptors: a few cheap numbers (and one category) per text, which the drift engine judges.

Per text: its length in characters and in tokens, its share of tokens outside the reference's vocabulary,
whether it is empty, its shares of non-ASCII characters, digits and upper-case letters, and one of its
tokens drawn by a fixed hash (a min-hash draw, so the window's draws follow the distribution of the texts'
token types) named when it is one of the reference's most frequent tokens, else ``(other)``.

Tokens are lower-cased runs of two or more word characters, as scikit-learn's ``TfidfVectorizer`` finds them.
"""

from __future__ import annotations

import collections
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

import numpy as np

from ..errors import InvalidReferenceError
from ..profiles import FeatureProfile

__all__ = ["NONE", "OTHER", "TextDescriptors", "tokens"]

TOKEN = re.compile(r"(?u)\b\w\w+\b")
VOCABULARY = 20_000  # tokens kept as the known vocabulary (by document frequency)
TOP = 30  # tokens the categorical descriptor names
OTHER, NONE = "(other)", "(none)"

# descriptor suffix -> (what its mean is, how a change is worded)
NUMERIC = ("chars", "tokens", "unknown", "empty", "non_ascii", "digits", "upper")
SHARES = {
    "unknown": "share of unknown tokens",
    "empty": "share of empty texts",
    "non_ascii": "share of non-ASCII characters",
    "digits": "share of digits",
    "upper": "share of upper-case letters",
}


def tokens(text: str) -> list[str]:
    return TOKEN.findall(text.lower())


_DIGITS = b"0123456789"
_UPPER = bytes(range(ord("A"), ord("Z") + 1))
_LETTERS = _UPPER + _UPPER.lower()
_NO_HASH = 1 << 32  # above every crc32


def _hash(token: str) -> int:
    return zlib.crc32(token.encode())


@dataclass(frozen=True, slots=True)
class TextDescriptors:
    """The descriptors of one text field, named ``{field}.chars``, ``{field}.tokens``... ``{field}.token``.

    ``vocabulary``: the reference's tokens by document frequency (most frequent first), at most 20,000;
    ``frequency``: each one's document frequency (only used to describe the reference's own texts).
    """

    field: str
    vocabulary: tuple[str, ...]
    frequency: tuple[int, ...] = ()
    _known: frozenset[str] = dataclass_field(init=False, repr=False, compare=False)
    _known_elsewhere: frozenset[str] = dataclass_field(init=False, repr=False, compare=False)
    _hashes: dict[str, int] = dataclass_field(init=False, repr=False, compare=False)
    _top: dict[int, str] = dataclass_field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Precomputed once, so that a text costs C-level set and map operations (about 20 us for 25 tokens).
        once = {t for t, n in zip(self.vocabulary, self.frequency, strict=False) if n <= 1}
        object.__setattr__(self, "_known", frozenset(self.vocabulary))
        object.__setattr__(self, "_known_elsewhere", frozenset(self.vocabulary) - once)  # in another reference text
        object.__setattr__(self, "_hashes", {t: _hash(t) for t in self.vocabulary})
        object.__setattr__(self, "_top", {_hash(t): t for t in self.vocabulary[:TOP]})

    @classmethod
    def fit(cls, field: str, texts: Iterable[str]) -> TextDescriptors:
        counts: collections.Counter[str] = collections.Counter()
        for text in texts:
            counts.update(set(tokens(text)))
        common = counts.most_common(VOCABULARY)
        return cls(field, tuple(t for t, _ in common), tuple(n for _, n in common))

    @property
    def names(self) -> tuple[str, ...]:
        return (*(f"{self.field}.{d}" for d in NUMERIC), f"{self.field}.token")

    def columns(self, texts: Sequence[str], reference: bool = False) -> list[tuple[str, np.ndarray, bool]]:
        """(name, values, categorical) per descriptor. ``reference``: the texts are the reference's own, and a
        token is unknown to a text when no other reference text has it (leave-one-out), as it would be to a
        new text; counted against the vocabulary itself, the reference's unknown share would be zero."""
        n = len(texts)
        chars, count, unknown, empty, non_ascii, digits, upper_share = ([0.0] * n for _ in NUMERIC)
        drawn: list[str] = [NONE] * n
        known, hashes, top = self._known, self._hashes, self._top
        counted = (self._known_elsewhere if reference else known).__contains__
        for i, text in enumerate(texts):
            words = tokens(text)
            length = len(text)
            chars[i] = length
            count[i] = len(words)
            if words:
                unknown[i] = 1.0 - sum(map(counted, words)) / len(words)
                distinct = set(words)
                seen = distinct & known
                first = min(map(hashes.__getitem__, seen)) if seen else _NO_HASH
                if len(seen) < len(distinct):
                    first = min(first, min(map(_hash, distinct - seen)))
                drawn[i] = top.get(first, OTHER)
            else:
                empty[i] = 1.0
            if not length:
                continue
            if text.isascii():
                raw = text.encode()
                digits[i] = (length - len(raw.translate(None, _DIGITS))) / length
                letters = length - len(raw.translate(None, _LETTERS))
                upper = length - len(raw.translate(None, _UPPER))
            else:
                non_ascii[i] = (length - len(text.encode("ascii", "ignore"))) / length
                digits[i] = sum(map(str.isdigit, text)) / length
                letters = sum(map(str.isalpha, text))
                upper = sum(map(str.isupper, text))
            upper_share[i] = upper / letters if letters else 0.0
        columns = (chars, count, unknown, empty, non_ascii, digits, upper_share)
        named = [(f"{self.field}.{d}", np.array(c, dtype=np.float64), False) for d, c in zip(NUMERIC, columns, strict=True)]
        return [*named, (f"{self.field}.token", np.array(drawn, dtype=object), True)]

    def explain(self, feature: str, reference: FeatureProfile, values: np.ndarray) -> str | None:
        """ "texts 2.3x longer (412 -> 950 characters)", "share of unknown tokens 3% -> 41%"; None when the
        feature is not one of this field's numeric descriptors."""
        prefix = f"{self.field}."
        if not feature.startswith(prefix) or reference.mean is None:
            return None
        what = feature[len(prefix) :]
        present = values[~np.isnan(values)]
        if what not in NUMERIC or not len(present):
            return None
        was, now = float(reference.mean), float(present.mean())
        if what in SHARES:
            digits = next((d for d in (0, 1, 2) if _percent(was, d) != _percent(now, d)), 3)
            return f"{SHARES[what]} {_percent(was, digits)} -> {_percent(now, digits)}"
        unit = "characters" if what == "chars" else "tokens"
        if was <= 0 or now <= 0:
            return f"texts of {was:.3g} -> {now:.3g} {unit} on average"
        ratio = now / was
        if ratio >= 1:
            return f"texts {ratio:.3g}x longer ({was:.3g} -> {now:.3g} {unit} on average)"
        return f"texts {1 / ratio:.3g}x shorter ({was:.3g} -> {now:.3g} {unit} on average)"

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "vocabulary": list(self.vocabulary)}

    @classmethod
    def from_json(cls, data: Any) -> TextDescriptors:
        try:
            return cls(str(data["field"]), tuple(str(t) for t in data["vocabulary"]))
        except (KeyError, TypeError) as exc:
            raise InvalidReferenceError(f"malformed text descriptors in the reference: {exc!r}") from exc


def _percent(share: float, digits: int = 0) -> str:
    """A share as a percentage, with a decimal more below 1% (and ``digits`` at least)."""
    return f"{share:.{max(digits, 1 if 0 < share < 0.01 else 0)}%}"
