"""A store URL as messages and reports may show it: never with its password."""

from __future__ import annotations

import urllib.parse

__all__ = ["shown_url"]


def shown_url(url: str) -> str:
    """The URL as an error message may show it: a password in it replaced by ``***``."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # a netloc it cannot split: show the scheme only
        return url.split("://", 1)[0] + "://..."
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username}:***@{netloc[-1]}"))
