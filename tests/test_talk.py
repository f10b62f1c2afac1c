"""`micro-llm talk`: stories streamed back from the board; Ctrl-C stops the board, not the
console; Ctrl-D leaves."""

from __future__ import annotations

import argparse
import importlib.util
import io
import subprocess
import sys

import pytest

from micro_llm import talk_cli
from micro_llm.board_link import BoardLink
from micro_llm.errors import UserError
from micro_llm.paths import FIRMWARE_DIR
from vboard_process import HANG, VirtualBoardProcess, mpremote


@pytest.fixture
def board(tmp_path, micropython):
    vb = VirtualBoardProcess(tmp_path / "flash")
    yield vb
    vb.stop()


class CtrlCAfter(io.StringIO):
    """Console output that gets a Ctrl-C from the user once `text` has been shown."""

    def __init__(self, text: str):
        super().__init__()
        self.text, self.pressed = text, False

    def write(self, s: str) -> int:
        n = super().write(s)
        if not self.pressed and self.text in self.getvalue():
            self.pressed = True
            raise KeyboardInterrupt
        return n


def test_output_streams_back_and_the_link_stays_usable(board):
    with BoardLink.open(board.port) as link:
        out = io.StringIO()
        finished = talk_cli.tell(link, "for i in range(3):\n print('line', i)", out)
        after = link.exec("print('next command')")
    assert finished is True
    assert out.getvalue() == "line 0\nline 1\nline 2\n"
    assert after == "next command\n"


def test_ctrl_c_stops_the_code_on_the_board_and_the_console_goes_on(board):
    endless = "import time\nticks = 0\nwhile True:\n ticks += 1\n print('tick')\n time.sleep(0.01)"
    with BoardLink.open(board.port) as link:
        out = CtrlCAfter("tick")
        finished = talk_cli.tell(link, endless, out)
        ticks = int(link.exec("print(ticks)"))
        later = int(link.exec("print(ticks)"))
        again = io.StringIO()
        talk_cli.tell(link, "print('still here')", again)
    assert finished is False
    assert ticks >= 1
    assert later == ticks  # the loop on the board has stopped
    assert again.getvalue() == "still here\n"


def test_an_error_on_the_board_is_shown_and_the_console_goes_on(board):
    with BoardLink.open(board.port) as link:
        out = io.StringIO()
        finished = talk_cli.tell(link, "print('before')\n1/0", out)
        after = link.exec("print('after')")
    assert finished is True
    assert out.getvalue().startswith("before\n\n(the board stopped: Traceback")
    assert out.getvalue().endswith("ZeroDivisionError: divide by zero)\n")
    assert after == "after\n"


def test_talk_to_a_board_without_the_storyteller_says_to_deploy(board):
    with pytest.raises(UserError) as error:
        talk_cli.run(argparse.Namespace(port=board.port, steps=None))
    assert str(error.value) == (
        f"the board on {board.port} cannot load the storyteller (ImportError: no module named "
        f"'storyteller'): deploy it first with: python tools/deploy.py --port {board.port}")


def test_ctrl_d_at_the_prompt_leaves_and_the_board_returns_to_its_repl(board):
    def ctrl_d(prompt: str) -> str:
        raise EOFError

    with BoardLink.open(board.port) as link:
        out = io.StringIO()
        talk_cli.console(link, read_line=ctrl_d, out=out)
    assert out.getvalue() == (
        "Type the start of a story and press Enter. Ctrl-C stops a story; Ctrl-D leaves.\n\n")
    result = mpremote(board.port, "exec", "print('free')")  # the port is free again
    assert result.stdout == "free\n"


@pytest.mark.skipif(importlib.util.find_spec("micro_llm.llm_cli") is None,
                    reason="the micro-llm command needs micro_llm.llm_cli, not yet in place")
def test_micro_llm_talk_names_a_missing_port():
    result = subprocess.run([sys.executable, "-m", "micro_llm.cli", "talk", "--port",
                             "/dev/ttyNOSUCHPORT"], capture_output=True, text=True, timeout=HANG)
    assert result.returncode == 2
    assert result.stderr == (
        "micro-llm: error: there is no serial port /dev/ttyNOSUCHPORT: plug the board in and "
        "give its port (on Linux ls /dev/ttyACM* /dev/ttyUSB*, on macOS ls /dev/cu.*)\n")


@pytest.mark.skipif(not (FIRMWARE_DIR / "storyteller.py").is_file(),
                    reason="waits on the engine: firmware/storyteller.py")
def test_a_prompt_is_told_as_a_story_streamed_from_the_board(tmp_path, models_dir, board):
    import os

    env = dict(os.environ, MICRO_LLM_MODELS=str(models_dir))
    deployed = subprocess.run([sys.executable, "tools/deploy.py", "--port", board.port,
                               "--no-smoke-test"], capture_output=True, text=True,
                              timeout=HANG * 5, env=env, cwd=FIRMWARE_DIR.parent)
    assert deployed.returncode == 0, deployed.stderr
    prompts = iter(["Once upon a time"])

    def read_line(prompt: str) -> str:
        try:
            return next(prompts)
        except StopIteration:
            raise EOFError from None

    with BoardLink.open(board.port) as link:
        link.exec(talk_cli._SETUP, timeout=HANG)
        out = io.StringIO()
        talk_cli.console(link, steps=16, read_line=read_line, out=out)
    told = out.getvalue().splitlines()
    assert told[1].startswith("Once upon a time")
    assert "tok/s" in out.getvalue()
