"""``python -m streamrun_async.cli``: the ``streamrun`` command without its script."""

from . import main

main()
