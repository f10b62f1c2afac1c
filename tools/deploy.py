#!/usr/bin/env python3
"""Put the storyteller on an ESP32-S3 board, in one command.

    python tools/deploy.py --port /dev/ttyACM0

In order: ask the board what it is (chip, MicroPython version, .mpy version and architecture,
free space, heap); check everything before writing anything; build the model blob and compile
the firmware with mpy-cross for that board; flash MicroPython first if --firmware is given;
upload what changed (each file verified by sha256 before it takes its name); and tell a short
story on the board as a smoke test.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from micro_llm.board_link import TRANSPORTS
from micro_llm.boards import DEFAULT_BOARD, load_board
from micro_llm.deploy import DEFAULT_MODEL, DeployOptions, deploy
from micro_llm.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deploy.py",
        description="Flash, upload and test the storyteller on a board.")
    parser.add_argument("--port", required=True, help="the board's serial port")
    parser.add_argument("--board", default=DEFAULT_BOARD,
                        help=f"board profile id or file (default: {DEFAULT_BOARD})")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help="model name, checkpoint path or built .mlb blob "
                             f"(default: {DEFAULT_MODEL})")
    parser.add_argument("--firmware", type=Path,
                        help="flash this MicroPython image first (esptool, offset 0x0)")
    parser.add_argument("--download-firmware", action="store_true",
                        help="download the image the board profile names (checked by sha256 "
                             "where the profile has one) and flash it")
    parser.add_argument("--erase", action="store_true",
                        help="erase the whole flash before flashing the firmware")
    parser.add_argument("--romfs", action="store_true",
                        help="put the model and modules in the ROMFS partition, used in place")
    parser.add_argument("--write-partition-table", action="store_true",
                        help="with --romfs: write the partition table that adds a ROMFS "
                             "partition (backs up the board's files first)")
    parser.add_argument("--backup-dir", type=Path,
                        help="where --write-partition-table backs up the board's files")
    parser.add_argument("--transport", choices=TRANSPORTS, default="mpremote",
                        help="mpremote, or ampy for a board without raw-paste mode")
    parser.add_argument("--no-smoke-test", action="store_true",
                        help="upload only; do not tell the test story")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each step")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(message)s")
    if args.erase and args.firmware is None and not args.download_firmware:
        print("deploy: error: --erase needs --firmware (erasing removes MicroPython)",
              file=sys.stderr)
        return 2
    try:
        options = DeployOptions(
            port=args.port, profile=load_board(args.board), model=args.model,
            firmware=args.firmware, download_firmware=args.download_firmware,
            erase=args.erase, use_romfs=args.romfs,
            write_partition_table=args.write_partition_table, transport=args.transport,
            smoke_test=not args.no_smoke_test, backup_dir=args.backup_dir,
        )
        deploy(options)
    except UserError as e:
        print(f"deploy: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("deploy: interrupted; run it again to finish (finished files are kept)",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
