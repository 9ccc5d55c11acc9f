"""The ``cchet`` command.

Each layer contributes its subcommands from a ``commands`` module with ``register(subparsers)``; the
modules are imported only when the parser is built, so ``import cchet`` stays light.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from cchet._version import __version__
from cchet.errors import CchetError

__all__ = ["build_parser", "main"]

COMMAND_MODULES = (
    "cchet.crypto.commands",
    "cchet.bench.commands",
    "cchet.broker.commands",
    "cchet.runtime.commands",
    "cchet.attest.commands",
    "cchet.platform.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cchet",
        description="Confidential heterogeneous compute: sealed data, attested keys, Ray on TEEs and GPUs.",
    )
    parser.add_argument("--version", action="version", version=f"cchet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        code: int = args.run(args)
    except CchetError as e:
        print(f"cchet: error: {e}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:
        print(f"cchet: error: {e}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
