"""The `micro-llm` command: each feature module adds its own subcommands."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .errors import UserError

# Each module has register(subparsers), which adds its subcommands; a subcommand's
# handler is set with set_defaults(run=...) and returns the exit status.
COMMAND_MODULES = (
    "micro_llm.llm_cli",
    "micro_llm.talk_cli",
    "micro_llm.tell_cli",
    "micro_llm.voice_cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="micro-llm",
        description="A tiny storyteller: stories260K in MicroPython, read aloud by SAM.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log each step")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(message)s",
    )
    try:
        return int(args.run(args) or 0)
    except UserError as e:
        print(f"micro-llm: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("micro-llm: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (| head): not an error worth a message.
        sys.stderr.close()
        return 0
    except OSError as e:
        print(f"micro-llm: error: {e.strerror or e}"
              + (f": {e.filename}" if e.filename else ""), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
