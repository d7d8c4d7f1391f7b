"""Entry point of the ``sandboxctl`` console script.

The CLI parses arguments and runs client commands; ``serve`` is handed the composition root, which
is imported only when the server actually starts so client commands stay fast.
"""

from __future__ import annotations

import os
import sys

from agentic_sandbox.cli.main import run_cli
from agentic_sandbox.controller.config import Settings


def _serve(settings: Settings) -> int:
    from agentic_sandbox.app import serve

    return serve(settings)


def main() -> None:
    try:
        code = run_cli(serve=_serve)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (as in `sandboxctl get instances | head`). Point stdout at
        # /dev/null so the interpreter's final flush does not fail again, and exit quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 0
    sys.exit(code)


if __name__ == "__main__":
    main()
