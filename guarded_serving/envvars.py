"""The environment variables the library reads, read in this one place (a test keeps it so).

``GUARDED_SERVING_DB``     the log store when ``db=`` / ``--db`` is not given
``GUARDED_SERVING_TOKEN``  the bearer token when ``auth_token=`` is not given
``GUARDED_SERVING_DEBUG``  the CLI prints an internal error's traceback
``HOSTNAME``               a replica's name in a fleet's heartbeats (a pod's name in Kubernetes)
``PWD``                    the directory the command was started in (the shell's), where a built Bento's
                           default log store goes: BentoML runs its workers in the Bento's own folder
``PGPASSWORD``             libpq's password, read by libpq itself; read here only to keep it out of
                           every message and report

It imports nothing of the package, so that any module (the store's backends too) may read it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

__all__ = ["Environment"]


@dataclass(frozen=True, slots=True)
class Environment:
    db: str | None
    token: str | None = field(repr=False)
    debug: bool
    host: str | None = None
    pg_password: str | None = field(default=None, repr=False)
    started_in: str | None = None

    @classmethod
    def read(cls) -> Environment:
        environ = os.environ
        return cls(
            db=environ.get("GUARDED_SERVING_DB") or None,
            token=environ.get("GUARDED_SERVING_TOKEN") or None,
            debug=bool(environ.get("GUARDED_SERVING_DEBUG")),
            host=environ.get("HOSTNAME") or None,
            pg_password=environ.get("PGPASSWORD") or None,
            started_in=environ.get("PWD") or None,
        )
