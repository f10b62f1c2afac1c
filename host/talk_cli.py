"""`micro-llm talk`: a small console for the storyteller on a board, over its serial REPL.

    micro-llm talk --port /dev/ttyACM0
    story> Once upon a time
    Once upon a time, there was a little girl named Lily. ...

Each line typed is a prompt; the board tells the story and the text streams back as it is
written. Ctrl-C stops the story on the board (the console stays); Ctrl-D leaves.
"""

from __future__ import annotations

import argparse
import codecs
import sys
from typing import Callable, TextIO

from .board_link import BoardExecError, BoardLink
from .errors import UserError

PROMPT = "story> "
_SETUP = "import storyteller\n_tell = getattr(storyteller, 'tell', storyteller.story)"
_END = b"\x04"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "talk", help="type prompts, and the storyteller on a board tells the stories",
        description="A console for the storyteller on a board: each line is a prompt; "
                    "Ctrl-C stops a story, Ctrl-D leaves.")
    parser.add_argument("--port", required=True, help="the board's serial port")
    parser.add_argument("--steps", type=int, help="tokens per story (default: the board's)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.steps is not None and not 1 <= args.steps <= 4096:
        raise UserError(f"steps must be between 1 and the model's context, not {args.steps}")
    link = BoardLink.open(args.port)
    try:
        try:
            link.exec(_SETUP, timeout=60)
        except BoardExecError as e:
            raise UserError(
                f"the board on {args.port} cannot load the storyteller ({last_line(e)}): "
                f"deploy it first with: python tools/deploy.py --port {args.port}") from None
        console(link, steps=args.steps)
    finally:
        link.close()
    return 0


def last_line(error: Exception) -> str:
    return str(error).strip().splitlines()[-1]


def console(link: BoardLink, steps: int | None = None, read_line: Callable[[str], str] = input,
            out: TextIO = sys.stdout) -> None:
    out.write("Type the start of a story and press Enter. Ctrl-C stops a story; "
              "Ctrl-D leaves.\n")
    while True:
        try:
            prompt = read_line(PROMPT)
        except EOFError:
            out.write("\n")
            return
        except KeyboardInterrupt:
            out.write("\n")
            continue
        if not prompt.strip():
            continue
        extra = "" if steps is None else f", steps={steps}"
        finished = tell(link, f"_tell({prompt!r}{extra})", out)
        if not finished:
            out.write("\n(stopped)\n")


def tell(link: BoardLink, code: str, out: TextIO) -> bool:
    """Run code in the board's raw REPL, streaming what it prints to out as it arrives.
    Ctrl-C (KeyboardInterrupt here) is passed to the board, which stops the code; returns
    False then, True when the code finished by itself."""
    port = link.serial
    read_until(link, b">")  # the raw REPL's prompt, left by the command before
    port.write(code.encode() + _END)
    if read_until(link, b"OK") != b"OK":
        raise link.lost()

    decode = codecs.getincrementaldecoder("utf-8")(errors="replace")
    interrupted = False
    in_traceback = False
    traceback = b""
    while True:
        try:
            byte = port.read(1)
            if not byte:
                continue  # the board is thinking; a story may pause between tokens
            if byte == _END:
                if in_traceback:
                    break  # the board's prompt follows, for the next command to read
                in_traceback = True
            elif in_traceback:
                traceback += byte
            else:
                out.write(decode.decode(byte))
                out.flush()
        except KeyboardInterrupt:
            if interrupted:
                raise  # a second Ctrl-C while the board does not stop: give up
            interrupted = True
            link.interrupt()
        except OSError:
            raise link.lost() from None
    out.write(decode.decode(b"", final=True))
    if traceback and not interrupted:
        out.write(f"\n(the board stopped: {traceback.decode(errors='replace').strip()})\n")
    return not interrupted


def read_until(link: BoardLink, ending: bytes, patience: int = 3) -> bytes:
    """Read up to and including `ending`; patience counts the port's read timeouts."""
    data = b""
    quiet = 0
    while not data.endswith(ending):
        try:
            byte = link.serial.read(1)
        except OSError:
            raise link.lost() from None
        if not byte:
            quiet += 1
            if quiet >= patience:
                raise link.lost()
            continue
        data += byte
    return data
