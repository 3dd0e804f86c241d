"""``python -m guarded_serving``: the ``guarded-serving`` command line."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
