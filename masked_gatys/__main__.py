"""``python -m masked_gatys`` runs the command-line interface.

Ctrl-C or SIGTERM before the command has started ends the process at once with
130 / 143: nothing is written yet, and an interrupt raised inside a half-done
import (numpy's, torch's) would leave a broken interpreter to unwind.
"""

import os
import signal


def _exit_at_once(signum: int, frame: object) -> None:
    os.write(2, b"interrupted\n")
    os._exit(128 + signum)


if __name__ == "__main__":
    for _sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_sig, _exit_at_once)

    from masked_gatys.cli import main

    main()
