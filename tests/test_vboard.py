"""The virtual board answers the real mpremote as an ESP32-S3 board running MicroPython does."""

from __future__ import annotations

import time

import pytest
import serial

from vboard_process import HANG, VirtualBoardProcess, mpremote


@pytest.fixture
def board(tmp_path, micropython):
    vb = VirtualBoardProcess(tmp_path / "flash")
    yield vb
    vb.stop()


def read_until(link: serial.Serial, ending: bytes) -> bytes:
    data = b""
    deadline = time.monotonic() + HANG
    while not data.endswith(ending):
        if time.monotonic() > deadline:
            raise AssertionError(f"no {ending!r}, got {data!r}")
        data += link.read(1)
    return data


def test_mpremote_runs_code_on_the_board(board):
    result = mpremote(board.port, "exec", "print(6 * 7)")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "42\n"


def test_board_files_live_in_its_folder_and_slash_paths_resolve_there(board):
    result = mpremote(board.port, "exec",
                      "import os\nos.mkdir('/lib')\nopen('/lib/hello.txt','w').write('hi')\n"
                      "os.rename('/lib/hello.txt', '/hello.txt')\nprint(sorted(os.listdir('/')))")
    assert result.returncode == 0, result.stderr
    # /.sim is where the virtual board mounts its hardware stand-ins (host/sim).
    assert result.stdout == "['.sim', 'hello.txt', 'lib']\n"
    assert (board.folder / "hello.txt").read_text() == "hi"
    assert list((board.folder / "lib").iterdir()) == []


def test_soft_reset_starts_a_fresh_interpreter_and_runs_boot_py(board):
    (board.folder / "boot.py").write_text("print('boot.py ran')\nBOOTED = 1\n")
    result = mpremote(board.port, "exec", "x = 5", "soft-reset", "exec",
                      "print('x' in globals(), BOOTED)")
    assert result.returncode == 0, result.stderr
    # x is gone after the reset; BOOTED shows that boot.py ran again (mpremote does not
    # pass on what boot.py prints during a reset).
    assert result.stdout == "False 1\n"


def test_raw_repl_soft_reset_answers_as_a_board(board):
    with serial.Serial(board.port, timeout=HANG, exclusive=True) as link:
        link.write(b"\r\x03\r\x01")
        read_until(link, b"raw REPL; CTRL-B to exit\r\n>")
        link.write(b"\x04")
        assert read_until(link, b"raw REPL; CTRL-B to exit\r\n>") == (
            b"OK\r\nMPY: soft reboot\r\nraw REPL; CTRL-B to exit\r\n>")


def test_raw_paste_mode_is_offered_and_runs_code(board):
    with serial.Serial(board.port, timeout=HANG, exclusive=True) as link:
        link.write(b"\r\x03\r\x01")
        read_until(link, b"raw REPL; CTRL-B to exit\r\n>")
        link.write(b"\x05A\x01")
        assert link.read(2) == b"R\x01"
        window = int.from_bytes(link.read(2), "little")
        assert link.read(1) == b"\x01"  # the first window is granted
        assert window > 0
        link.write(b"print('pasted')\x04")
        assert read_until(link, b"\x04>") == b"\x04pasted\n\x04\x04>"


def test_ctrl_c_interrupts_running_code_like_a_board(board):
    with serial.Serial(board.port, timeout=HANG, exclusive=True) as link:
        link.write(b"\r\x03\r\x01")
        read_until(link, b"raw REPL; CTRL-B to exit\r\n>")
        link.write(b"print('looping')\nwhile True:\n pass\n\x04")
        read_until(link, b"looping\n")
        link.write(b"\x03")
        reply = read_until(link, b"\x04>")
        assert reply.endswith(b"KeyboardInterrupt: \n\x04>")


def test_statvfs_reports_the_boards_filesystem_size(board):
    # Waveshare ESP32-S3-Zero: 4 MB flash less 0x220000 for the bootloader and firmware.
    (board.folder / "song.wav").write_bytes(bytes(10_000))
    result = mpremote(board.port, "exec", "import os\nprint(os.statvfs('/')[:4])")
    assert result.stdout == f"(4096, 4096, {0x1E0000 // 4096}, {0x1E0000 // 4096 - 3})\n"


def test_heap_is_limited_to_the_board_profiles_budget(board):
    result = mpremote(board.port, "exec",
                      "a = bytearray(600_000)\nprint('600 KB fits')\ntry:\n"
                      " b = bytearray(1_048_576)\nexcept MemoryError:\n print('1 MB does not')")
    assert result.stdout == "600 KB fits\n1 MB does not\n"


def test_board_says_which_chip_it_stands_in_for(tmp_path, micropython):
    vb = VirtualBoardProcess(tmp_path / "flash", "--chip", "esp32c3")
    try:
        result = mpremote(vb.port, "exec", "import _vboard\nprint(_vboard.CHIP, _vboard.BOARD)")
    finally:
        vb.stop()
    assert result.stdout == "esp32c3 waveshare-esp32-s3-zero\n"


def test_romfs_partition_image_is_mounted_at_rom(tmp_path, micropython):
    from micro_llm import romfs

    image = romfs.build_image(("story.mlb", b"weights" * 100), {"lib/hello.py": b"X = 7\n"})
    (tmp_path / "flash.romfs").write_bytes(image + b"\xff" * (65536 - len(image)))
    vb = VirtualBoardProcess(tmp_path / "flash", "--romfs-bytes", "65536")
    try:
        result = mpremote(vb.port, "exec",
                          "import os, hello\nprint(sorted(os.listdir('/rom')), hello.X)\n"
                          "print(len(memoryview(open('/rom/story.mlb','rb'))))")
    finally:
        vb.stop()
    assert result.returncode == 0, result.stderr
    assert result.stdout == "['lib', 'story.mlb'] 7\n700\n"
