"""The ``streamrun`` command line (``pip install 'streamrun-async[cli]'``).

click and rich (the ``cli`` extra) are imported by this package only, never by
``streamrun_async`` itself, and only once ``main`` runs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

_NEEDS = ("click", "rich")


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``streamrun`` command (the console script's entry point).

    ``argv`` defaults to ``sys.argv[1:]``. Exits with the command's status.
    """
    try:
        from ._app import cli
    except ImportError as error:
        missing = (error.name or "").partition(".")[0]
        if missing not in _NEEDS:
            raise
        sys.stderr.write(
            f"streamrun: the command line needs {' and '.join(_NEEDS)} ({missing} is not "
            "installed): pip install 'streamrun-async[cli]'\n"
        )
        raise SystemExit(1) from None
    cli.main(args=list(argv) if argv is not None else None, prog_name="streamrun")
