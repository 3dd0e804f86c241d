"""Generated text, no network: short news items on four topics, and product reviews beside numbers.

``news(n, seed)`` draws texts and their topic (0-3); ``reviews(n, seed)`` draws a DataFrame of reviews
(free text) with stars, price and channel, and whether the customer came back. Words are drawn from
word lists with Zipf-like weights, with sentence case, now and then a number or a name never seen before,
so that healthy traffic has a small steady share of unknown tokens, digits and capitals, as real text does.
The ``breakage`` argument changes one thing: ``"new_topic"`` (a fifth topic's vocabulary), ``"longer"``
(texts twice as long), ``"upper"`` (upper-cased), ``"cyrillic"`` (words transliterated to Cyrillic),
``"empty"`` (a quarter of the texts empty).
"""

from __future__ import annotations

import random
from typing import Any

TOPICS = {
    "sports": "match team season coach player goal score league win final club fans stadium striker keeper "
    "referee injury transfer champion cup race runner medal tournament defeat victory training squad pitch "
    "penalty draw",
    "politics": "vote election party minister parliament law court senate policy budget tax reform campaign "
    "leader debate coalition president government opposition bill ruling treaty summit sanctions poll "
    "majority cabinet mayor council",
    "technology": "software device phone chip data cloud network app update security startup launch battery "
    "screen robot algorithm platform server code users privacy browser camera laptop processor memory "
    "sensor developer release",
    "cooking": "recipe oven flour butter sugar garlic onion sauce pasta bread soup salad dinner kitchen chef "
    "bake roast pepper salt cheese tomato herbs lemon honey rice chicken grill spice dough",
}
NEW_TOPIC = (
    "patient doctor hospital vaccine virus nurse clinic surgery symptom therapy dose trial disease "
    "infection treatment diagnosis medicine health ward pharmacy"
)
COMMON = [
    "the",
    "a",
    "of",
    "to",
    "and",
    "in",
    "on",
    "for",
    "with",
    "at",
    "by",
    "from",
    "new",
    "after",
    "over",
    "this",
    "that",
    "its",
    "more",
    "says",
    "said",
    "will",
    "has",
]
VERBS = [
    "shows",
    "brings",
    "makes",
    "takes",
    "gets",
    "sees",
    "leaves",
    "keeps",
    "wins",
    "loses",
    "opens",
    "starts",
    "ends",
    "meets",
]
SYLLABLES = ["ka", "lo", "mi", "ren", "to", "sha", "vel", "dor", "ni", "bra", "que", "zin", "pol", "tar", "fe", "ru", "san", "ox"]
POSITIVE = ["great", "excellent", "lovely", "fast", "friendly", "perfect", "happy", "recommend", "smooth", "reliable"]
NEGATIVE = ["broken", "slow", "rude", "late", "poor", "awful", "refund", "disappointed", "faulty", "missing"]
PRODUCT = [
    "delivery",
    "package",
    "item",
    "order",
    "service",
    "support",
    "quality",
    "price",
    "size",
    "colour",
    "box",
    "staff",
    "app",
    "store",
]
CYRILLIC = str.maketrans("abcdeghiklmnoprstuvxyz", "абцдегхиклмнопрстуваыз")


def _weights(n: int) -> list[float]:
    return [1.0 / (k + 1) ** 0.8 for k in range(n)]


def _sentence(rng: random.Random, topic: list[str], weights: list[float], words: int) -> str:
    out = []
    for _ in range(words):
        draw = rng.random()
        if draw < 0.40:
            out.append(rng.choice(COMMON))
        elif draw < 0.48:
            out.append(rng.choice(VERBS))
        elif draw < 0.985:
            out.append(rng.choices(topic, weights)[0])
        elif draw < 0.993:
            out.append("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize())  # a name
        else:
            out.append(str(rng.choice([rng.randint(2, 99), rng.randint(1990, 2030)])))
    return " ".join(out).capitalize() + "."


def _text(rng: random.Random, topic: list[str], scale: float = 1.0) -> str:
    weights = _weights(len(topic))
    sentences = max(1, round(rng.randint(1, 4) * scale))
    return " ".join(_sentence(rng, topic, weights, rng.randint(5, 14)) for _ in range(sentences))


def broken(text: str, breakage: str | None, rng: random.Random) -> str:
    if breakage == "upper":
        return text.upper()
    if breakage == "cyrillic":
        return text.translate(CYRILLIC)
    if breakage == "empty" and rng.random() < 0.25:
        return ""
    return text


def news(n: int, seed: int = 0, breakage: str | None = None) -> tuple[list[str], list[int]]:
    """``n`` news texts and their topics (0-3)."""
    rng = random.Random(seed)
    vocab = [words.split() for words in TOPICS.values()]
    texts, topics = [], []
    for _ in range(n):
        topic = rng.randrange(len(vocab))
        words = NEW_TOPIC.split() if breakage == "new_topic" else vocab[topic]
        text = _text(rng, words, 2.0 if breakage == "longer" else 1.0)
        texts.append(broken(text, breakage, rng))
        topics.append(topic)
    return texts, topics


def reviews(n: int, seed: int = 0, breakage: str | None = None) -> tuple[Any, list[int]]:
    """A DataFrame of ``n`` reviews (``review``, ``stars``, ``price``, ``channel``) and whether each customer came back."""
    import pandas as pd

    rng = random.Random(seed)
    rows, labels = [], []
    for _ in range(n):
        happy = rng.random() < 0.6
        tone = POSITIVE if happy else NEGATIVE
        words = NEW_TOPIC.split() if breakage == "new_topic" else tone * 2 + PRODUCT
        text = broken(_text(rng, words, 2.0 if breakage == "longer" else 1.0), breakage, rng)
        stars = min(5, max(1, round(rng.gauss(4.2 if happy else 2.0, 0.8))))
        price = round(rng.lognormvariate(3.0, 0.6), 2)
        channel = rng.choices(["web", "app", "store"], [0.5, 0.3, 0.2])[0]
        rows.append({"review": text, "stars": stars, "price": price, "channel": channel})
        labels.append(int(rng.random() < (0.8 if happy else 0.25)))
    return pd.DataFrame(rows), labels
