"""Entry point of the ``sandboxctl`` console script.

The CLI parses arguments and runs client commands; ``serve`` is handed the composition root, which
is imported only when the server actually starts so client commands stay fast.
"""

from __future__ import annotations

import sys

from agentic_sandbox.cli.main import run_cli
from agentic_sandbox.controller.config import Settings


def _serve(settings: Settings) -> int:
    from agentic_sandbox.app import serve

    return serve(settings)


def main() -> None:
    sys.exit(run_cli(serve=_serve))


if __name__ == "__main__":
    main()
