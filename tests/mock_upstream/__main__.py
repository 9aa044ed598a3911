"""CLI: ``python -m tests.mock_upstream --host 127.0.0.1 --port N``.

Prints ``mock-upstream listening on HOST:PORT`` (flushed) once ready; exits on
SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio

from .server import serve_forever


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m tests.mock_upstream", description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on the ready line)")
    ap.add_argument("--quiet", action="store_true", help="no per-request '<METHOD> <status>' lines on stderr")
    args = ap.parse_args(argv)
    asyncio.run(serve_forever(args.host, args.port, log=not args.quiet))


if __name__ == "__main__":
    main()
