"""``python -m streamrun_async.testing``: serve the emulator until Ctrl-C (``--help``)."""

from ._command import main

if __name__ == "__main__":
    main()
