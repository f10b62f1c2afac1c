"""tools/deploy.py against the virtual board, end to end through the real mpremote; and the
checks it makes before it writes anything."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pty
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import serial

from micro_llm import blobio, checkpoint, deploy, quantize, romfs
from micro_llm.boards import load_board
from micro_llm.paths import BOARDS_DIR, FIRMWARE_DIR
from vboard_process import DEPLOY, VirtualBoardProcess, mpremote, run_deploy

BOARD_ID = "waveshare-esp32-s3-zero"
ROMFS_BYTES = 524288


def blob_file(folder: Path, name: str, size: int) -> Path:
    """A valid float32 blob of exactly `size` bytes (or the smallest one, if that is more):
    a made-up model, for transport tests, which the deploy checks as it checks any blob."""
    dim, hidden, layers, vocab = 8, 8, 1, 16
    shapes = {"emb": (vocab, dim), "rms_att": (layers, dim), "wq": (layers, dim, dim),
              "wk": (layers, dim, dim), "wv": (layers, dim, dim), "wo": (layers, dim, dim),
              "rms_ffn": (layers, dim), "w1": (layers, hidden, dim),
              "w2": (layers, dim, hidden), "w3": (layers, hidden, dim), "rms_final": (dim,)}
    rng = np.random.default_rng(len(name))
    weights = {k: rng.standard_normal(v).astype(np.float32) for k, v in shapes.items()}
    config = checkpoint.Config(dim, hidden, layers, 2, 2, vocab, 16)
    ckpt = checkpoint.Checkpoint(config, True, 0, weights)
    pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n"] + [b"p%d" % i for i in range(vocab - 3)]

    def build(padding: int) -> Path:
        tok = checkpoint.Tokenizer(8 + padding, pieces[:-1] + [pieces[-1] + b"x" * padding],
                                   np.zeros(vocab, dtype=np.float32))
        path = folder / f"{name}.mlb"
        header, sections = quantize.quantize_f32(ckpt, tok)
        blobio.write_blob(path, header, sections)
        return path

    smallest = build(0).stat().st_size
    return build(max(0, size - smallest))


def firmware_modules() -> list[str]:
    return sorted(p.stem for p in FIRMWARE_DIR.glob("*.py")
                  if p.name not in ("main.py", "boot.py"))


def expected_files(blob: Path) -> dict[str, bytes]:
    """The board's files after a plain deploy, except the compiled modules."""
    profile = json.loads((BOARDS_DIR / f"{BOARD_ID}.json").read_text())
    return {
        f"models/{blob.stem}.mlb": blob.read_bytes(),
        "micro_llm.json": json.dumps({"board": BOARD_ID, "model": f"/models/{blob.stem}.mlb"},
                                     sort_keys=True).encode(),
        "board.json": json.dumps(profile, sort_keys=True, separators=(",", ":")).encode(),
        "main.py": (FIRMWARE_DIR / "main.py").read_bytes(),
    }


def board_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def board(tmp_path, micropython):
    vb = VirtualBoardProcess(tmp_path / "flash")
    yield vb
    vb.stop()


# ---- the deploy, end to end

def test_deploy_uploads_profile_config_model_and_modules_compiled_for_the_board(tmp_path, board):
    blob = blob_file(tmp_path, "tiny", 50_000)
    result = run_deploy("--port", board.port, "--model", str(blob), "--no-smoke-test")
    assert result.returncode == 0, result.stderr

    files = board_files(board.folder)
    for path, data in expected_files(blob).items():
        assert files.pop(path) == data, path
    modules = firmware_modules()
    assert sorted(files) == [f"lib/{m}.mpy" for m in modules]
    for module in modules:
        header = files[f"lib/{module}.mpy"][:3]
        # .mpy header: 'M', version 6, then (architecture << 2 | sub-version) when the module
        # holds native code (x64 is architecture 2), else 0.
        source = (FIRMWARE_DIR / f"{module}.py").read_text()
        native = "@micropython.viper" in source or "@micropython.native" in source
        assert header == bytes([ord("M"), 6, (2 << 2 | 3) if native else 0]), module
    assert result.stdout.splitlines()[0] == (
        "found virtual waveshare-esp32-s3-zero: MicroPython 1.29.0, .mpy v6.3 x64, "
        "1920 KB free, heap 1012 KB")


def test_a_second_deploy_uploads_nothing(tmp_path, board):
    blob = blob_file(tmp_path, "tiny", 50_000)
    first = run_deploy("--port", board.port, "--model", str(blob), "--no-smoke-test")
    assert first.returncode == 0, first.stderr
    before = {p: p.stat().st_mtime_ns for p in board.folder.rglob("*") if p.is_file()}

    second = run_deploy("--port", board.port, "--model", str(blob), "--no-smoke-test")
    assert second.returncode == 0, second.stderr
    count = len(firmware_modules()) + 4
    assert f"uploaded 0 files, {count} already on the board; all verified by sha256" in (
        second.stdout.splitlines())
    assert {p: p.stat().st_mtime_ns for p in board.folder.rglob("*") if p.is_file()} == before


def test_a_deploy_keeps_the_users_main_py_and_settings(tmp_path, board):
    (board.folder / "main.py").write_bytes(b"print('my own program')\n")
    settings = {"board": BOARD_ID, "model": "/models/old.mlb",
                "storyteller": {"start": "button", "button": 0}}
    (board.folder / "micro_llm.json").write_text(json.dumps(settings))
    blob = blob_file(tmp_path, "tiny", 50_000)
    result = run_deploy("--port", board.port, "--model", str(blob), "--no-smoke-test")
    assert result.returncode == 0, result.stderr
    assert "kept your own /main.py (to tell a story at power-on, call storyteller.start() " \
        "from it)" in result.stdout.splitlines()
    assert (board.folder / "main.py").read_bytes() == b"print('my own program')\n"
    assert json.loads((board.folder / "micro_llm.json").read_text()) == {
        "board": BOARD_ID, "model": "/models/tiny.mlb",
        "storyteller": {"start": "button", "button": 0}}


def test_a_deploy_cut_part_way_then_rerun_completes_and_leaves_no_partial_file(tmp_path,
                                                                               micropython):
    blob = blob_file(tmp_path, "tiny", 200_000)
    vb = VirtualBoardProcess(tmp_path / "flash", "--cut-after", "150000")
    try:
        cut = run_deploy("--port", vb.port, "--model", str(blob), "--no-smoke-test")
        assert cut.returncode == 2
        assert cut.stderr == (
            f"deploy: error: the link to the board on {vb.port} was lost: plug it back in "
            "and run the same command again (finished files are kept; a half-written one is "
            "replaced)\n")
        # The cut fell in the model's upload: it exists only under its temporary name.
        after_cut = board_files(vb.folder)
        assert "models/tiny.mlb" not in after_cut
        assert 0 < len(after_cut["models/tiny.mlb.part"]) < len(blob.read_bytes())

        port = vb.next_port()  # the board comes back on a new port
        rerun = run_deploy("--port", port, "--model", str(blob), "--no-smoke-test")
    finally:
        vb.stop()
    assert rerun.returncode == 0, rerun.stderr
    assert "removed 1 partial files left by an interrupted deploy" in rerun.stdout.splitlines()
    files = board_files(vb.folder)
    assert not [p for p in files if p.endswith(".part")]
    for path, data in expected_files(blob).items():
        assert files[path] == data, path


def test_ampy_transport_deploys_the_same_files(tmp_path, board):
    blob = blob_file(tmp_path, "tiny", 20_000)
    result = run_deploy("--port", board.port, "--model", str(blob), "--no-smoke-test",
                        "--transport", "ampy")
    assert result.returncode == 0, result.stderr
    files = board_files(board.folder)
    for path, data in expected_files(blob).items():
        assert files[path] == data, path
    assert sorted(p for p in files if p.startswith("lib/")) == [
        f"lib/{m}.mpy" for m in firmware_modules()]


# ---- ROMFS

def test_romfs_deploy_writes_the_partition_and_the_board_mounts_it_at_rom(tmp_path,
                                                                          micropython):
    blob = blob_file(tmp_path, "tiny", 100_000)
    vb = VirtualBoardProcess(tmp_path / "flash", "--romfs-bytes", str(ROMFS_BYTES))
    try:
        first = run_deploy("--port", vb.port, "--model", str(blob), "--no-smoke-test",
                           "--romfs")
        assert first.returncode == 0, first.stderr
        check = mpremote(vb.port, "exec",
                         "import os, hashlib, binascii\n"
                         "print(sorted(os.listdir('/rom')), sorted(os.listdir('/rom/lib')))\n"
                         "w = memoryview(open('/rom/tiny.mlb', 'rb'))\n"
                         "print(len(w), binascii.hexlify(hashlib.sha256(w).digest()).decode())\n"
                         "print(open('/micro_llm.json').read())")
        again = run_deploy("--port", vb.port, "--model", str(blob), "--no-smoke-test",
                           "--romfs")
    finally:
        vb.stop()
    assert check.returncode == 0, check.stderr
    lines = check.stdout.splitlines()
    assert lines[0] == f"{['lib', 'tiny.mlb']} {[f'{m}.mpy' for m in firmware_modules()]}"
    assert lines[1] == f"100000 {hashlib.sha256(blob.read_bytes()).hexdigest()}"
    assert json.loads(lines[2]) == {"board": BOARD_ID, "model": "/rom/tiny.mlb"}
    assert not (vb.folder / "models" / "tiny.mlb").exists()
    assert again.returncode == 0, again.stderr
    assert any(line.startswith("ROMFS partition already holds this image")
               for line in again.stdout.splitlines())


def test_romfs_without_a_partition_shows_the_table_and_writes_nothing(tmp_path, board):
    blob = blob_file(tmp_path, "tiny", 20_000)
    (board.folder / "notes.txt").write_text("mine")
    result = run_deploy("--port", board.port, "--model", str(blob), "--no-smoke-test",
                        "--romfs")
    assert result.returncode == 2
    assert (
        "# Name,   Type, SubType, Offset,   Size\n"
        "nvs,      data, nvs,     0x009000, 0x006000\n"
        "phy_init, data, phy,     0x00f000, 0x001000\n"
        "factory,  app,  factory, 0x010000, 0x210000\n"
        "romfs,    data, 0x8f,    0x220000, 0x080000\n"
        "vfs,      data, fat,     0x2a0000, 0x160000\n") in result.stdout
    assert result.stderr == (
        "deploy: error: the board needs the partition table above for --romfs: run again "
        "with --write-partition-table (your files are backed up first, then the board's "
        "filesystem is recreated, empty), or deploy without --romfs\n")
    assert board_files(board.folder) == {"notes.txt": b"mine"}


def test_writing_the_partition_table_backs_up_the_boards_files_first(tmp_path, board):
    blob = blob_file(tmp_path, "tiny", 20_000)
    (board.folder / "lib").mkdir()
    (board.folder / "lib" / "mine.py").write_text("X = 1\n")
    (board.folder / "notes.txt").write_text("mine")
    backup = tmp_path / "backup"
    result = run_deploy("--port", board.port, "--model", str(blob), "--no-smoke-test",
                        "--romfs", "--write-partition-table", "--backup-dir", str(backup))
    assert result.returncode == 2
    assert f"backed up 2 files from the board to {backup}" in result.stdout.splitlines()
    assert board_files(backup) == {"lib/mine.py": b"X = 1\n", "notes.txt": b"mine"}
    # A virtual board has no partition table: the deploy stops before esptool.
    assert result.stderr == (
        "deploy: error: a virtual board has no partition table to write: start "
        "tools/vboard.py with --romfs-bytes 524288 to give it a ROMFS partition\n")


# ---- errors a user meets, each one sentence that says what to do

def test_no_such_port():
    result = run_deploy("--port", "/dev/ttyNOSUCHPORT", "--no-smoke-test")
    assert result.returncode == 2
    assert result.stderr == (
        "deploy: error: there is no serial port /dev/ttyNOSUCHPORT: plug the board in and "
        "give its port (on Linux ls /dev/ttyACM* /dev/ttyUSB*, on macOS ls /dev/cu.*)\n")


def test_port_busy(tmp_path, board):
    blob = blob_file(tmp_path, "tiny", 1000)
    with serial.Serial(board.port, exclusive=True):
        result = run_deploy("--port", board.port, "--model", str(blob), "--no-smoke-test")
    assert result.returncode == 2
    assert result.stderr == (
        f"deploy: error: {board.port} is in use by another program (a serial monitor, "
        "Thonny, another mpremote or micro-llm talk): close it and try again\n")


def test_board_not_answering_the_raw_repl(tmp_path):
    blob = blob_file(tmp_path, "tiny", 1000)
    master, slave = pty.openpty()  # a serial port with nothing behind it
    port = os.ttyname(slave)
    try:
        result = run_deploy("--port", port, "--model", str(blob), "--no-smoke-test")
    finally:
        os.close(slave)
        os.close(master)
    assert result.returncode == 2
    firmware = load_board(BOARD_ID).firmware
    assert result.stderr == (
        f"deploy: error: the board on {port} does not answer MicroPython's raw REPL: press "
        "its reset button and try again, or, if it has no MicroPython yet, download "
        f"{firmware['file']} (no sha256 published) from {firmware['url']} and run the deploy "
        "again with --firmware FILE\n")


def test_wrong_chip(tmp_path, micropython):
    blob = blob_file(tmp_path, "tiny", 1000)
    vb = VirtualBoardProcess(tmp_path / "flash", "--chip", "esp32c3")
    try:
        result = run_deploy("--port", vb.port, "--model", str(blob), "--no-smoke-test")
    finally:
        vb.stop()
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"deploy: error: the board on {vb.port} is ESP32-C3 (its MicroPython says 'linux ")
    assert result.stderr.endswith(
        "), but the profile waveshare-esp32-s3-zero is for ESP32-S3: connect an ESP32-S3 "
        "board, or name this board's profile with --board\n")
    assert board_files(vb.folder) == {}


def test_no_space(tmp_path, board):
    blob = blob_file(tmp_path, "tiny", 300_000)
    (board.folder / "recording.wav").write_bytes(bytes(1_800_000))  # 440 of 480 blocks
    result = run_deploy("--port", board.port, "--model", str(blob), "--no-smoke-test")
    assert result.returncode == 2
    assert result.stderr.startswith(
        "deploy: error: the board has 160 KB free and this deploy needs ")
    assert result.stderr.endswith(
        " KB: delete files you do not need from the board (mpremote fs ls, mpremote fs rm "
        "FILE) or choose a smaller model\n")
    assert sorted(board_files(board.folder)) == ["recording.wav"]


def test_model_too_big_for_the_heap(tmp_path, board):
    blob = blob_file(tmp_path, "huge", 1_100_000)
    result = run_deploy("--port", board.port, "--model", str(blob), "--no-smoke-test")
    assert result.returncode == 2
    assert result.stderr == (
        "deploy: error: the model huge is 1074 KB, more than the 1012 KB heap of "
        "waveshare-esp32-s3-zero: choose a smaller model with --model, or run the weights "
        "from flash with --romfs\n")
    assert board_files(board.folder) == {}


def test_old_micropython_is_refused_with_the_firmware_to_flash():
    facts = deploy.BoardFacts(
        machine="Generic ESP32S3 module with ESP32S3", platform="esp32", version=(1, 22, 2),
        mpy=10 << 10 | 2 << 8 | 6, chip="esp32s3", virtual=None, fs_free=1 << 20,
        fs_total=2 << 20, heap_free=1 << 20, heap_total=1 << 20, rom=None, partitions=None)
    with pytest.raises(deploy.DeployError) as error:
        deploy.check_board(facts, load_board(BOARD_ID), "/dev/ttyACM0")
    assert str(error.value) == (
        "the board runs MicroPython 1.22.2, and the storyteller needs 1.25 or newer: download "
        "ESP32_GENERIC_S3-20251209-v1.27.0.bin from "
        "https://micropython.org/resources/firmware/ESP32_GENERIC_S3-20251209-v1.27.0.bin "
        "and run the deploy again with --firmware FILE")


@pytest.mark.parametrize("machine, chip", [
    ("Generic ESP32S3 module with ESP32S3", "esp32s3"),
    ("Generic ESP32S3 module with Octal-SPIRAM with ESP32S3", "esp32s3"),
    ("Seeed XIAO ESP32S3 with ESP32-S3-FN8", "esp32s3"),
    ("ESP32C3 module with ESP32C3", "esp32c3"),
    ("Generic ESP32 module with ESP32", "esp32"),
    ("linux [GCC 14.2.1] version", None),
])
def test_chip_is_read_from_micropythons_machine_string(machine, chip):
    assert deploy.chip_from_machine(machine) == chip


# ---- flashing: the image check and the esptool command (never run here)

def esptool_image(path: Path, image_class: str) -> Path:
    """A firmware image written by esptool itself."""
    from esptool import bin_image

    image = getattr(bin_image, image_class)()
    image.entrypoint = 0x40370000
    segment = bin_image.ImageSegment(0x3FC90000, bytes(64))
    segment.name = ".dram0.data"
    image.segments = [segment]
    image.save(str(path))
    return path


def test_an_esp32s3_image_passes_the_check(tmp_path):
    image = esptool_image(tmp_path / "s3.bin", "ESP32S3FirmwareImage")
    digest = deploy.check_firmware_image(image, load_board(BOARD_ID))
    assert digest == hashlib.sha256(image.read_bytes()).hexdigest()


def test_an_image_for_another_chip_is_refused(tmp_path):
    image = esptool_image(tmp_path / "c3.bin", "ESP32C3FirmwareImage")
    with pytest.raises(deploy.DeployError) as error:
        deploy.check_firmware_image(image, load_board(BOARD_ID))
    assert str(error.value) == (
        f"{image} is a firmware image for ESP32-C3, not ESP32-S3: download "
        "ESP32_GENERIC_S3-20251209-v1.27.0.bin from "
        "https://micropython.org/resources/firmware/ESP32_GENERIC_S3-20251209-v1.27.0.bin")


def test_a_file_that_is_no_firmware_image_is_refused(tmp_path):
    not_image = tmp_path / "notes.bin"
    not_image.write_bytes(b"hello, this is not firmware" * 4)
    with pytest.raises(deploy.DeployError) as error:
        deploy.check_firmware_image(not_image, load_board(BOARD_ID))
    assert str(error.value).startswith(f"{not_image} is not an ESP32 firmware image: ")


def test_flashing_erases_then_writes_at_offset_zero_for_the_esp32s3(tmp_path):
    image = tmp_path / "fw.bin"
    commands = deploy.esptool_commands("/dev/ttyACM0", image, "esp32s3", erase=True)
    base = ["-m", "esptool", "--chip", "esp32s3", "--port", "/dev/ttyACM0", "--baud", "460800"]
    assert [c[1:] for c in commands] == [base + ["erase-flash"],
                                         base + ["write-flash", "0x0", str(image)]]


def test_erase_without_firmware_is_refused():
    result = run_deploy("--port", "/dev/ttyACM0", "--erase")
    assert result.returncode == 2
    assert result.stderr == (
        "deploy: error: --erase needs --firmware (erasing removes MicroPython)\n")


# ---- the partition table that makes room for ROMFS

def test_partition_table_binary_has_the_romfs_entry_and_an_md5(tmp_path):
    layout = romfs.layout_with_romfs(None, 4 << 20, ROMFS_BYTES)
    table = romfs.table_binary(layout)
    assert len(table) == 0xC00
    # ESP-IDF's entry: magic AA 50, type, subtype, offset, size, 16-byte label, flags.
    assert table[3 * 32:4 * 32] == (b"\xaa\x50\x01\x8f" + struct.pack("<II", 0x220000, 0x80000)
                                    + b"romfs".ljust(16, b"\0") + bytes(4))
    assert table[4 * 32:5 * 32] == (b"\xaa\x50\x01\x81" + struct.pack("<II", 0x2A0000, 0x160000)
                                    + b"vfs".ljust(16, b"\0") + bytes(4))
    assert table[5 * 32:6 * 32] == (b"\xeb\xeb" + b"\xff" * 14
                                    + hashlib.md5(table[:5 * 32]).digest())
    assert table[6 * 32:] == b"\xff" * (0xC00 - 6 * 32)


# ---- the real model on the virtual board

_STORY = ("import gc, llm\ngc.collect()\nfree = gc.mem_free()\n"
          "m = llm.load({path!r}, steps=16)\ngc.collect()\nheld = free - gc.mem_free()\n"
          "llm.generate(m, 'Once upon a time', steps=16, temperature=0.0)\n"
          "print()\n"
          "print('loaded into the heap' if held > {blob_bytes} // 2 else 'used in place')")


def test_the_deployed_model_tells_the_simulators_story_from_files_and_from_romfs(
        tmp_path, int8_blob, micropython):
    from micro_llm import simulator

    size = int8_blob.stat().st_size
    expected = simulator.run(_STORY.format(path=str(int8_blob), blob_bytes=size),
                             heap_bytes=8 << 20, capture=True, timeout=600)
    assert expected.returncode == 0, expected.stderr
    expected_story = expected.stdout.decode().splitlines()[0]

    told = {}
    for layout, options, path in (
            ("files", (), "/models/stories260K.mlb"),
            ("romfs", ("--romfs-bytes", str(ROMFS_BYTES)), "/rom/stories260K.mlb")):
        vb = VirtualBoardProcess(tmp_path / layout, *options)
        try:
            flags = ("--romfs",) if layout == "romfs" else ()
            result = run_deploy("--port", vb.port, "--no-smoke-test", *flags)
            assert result.returncode == 0, result.stderr
            told[layout] = mpremote(vb.port, "exec", _STORY.format(path=path, blob_bytes=size))
        finally:
            vb.stop()
    lines = {layout: [line for line in done.stdout.splitlines() if line]
             for layout, done in told.items()}
    assert lines["files"] == [expected_story, "loaded into the heap"]
    assert lines["romfs"] == [expected_story, "used in place"]


# ---- the smoke test, once the engine is in place

ENGINE = importlib.util.find_spec("micro_llm.models") is not None and (
    FIRMWARE_DIR / "storyteller.py").is_file()


@pytest.mark.skipif(not ENGINE, reason="waits on the engine: micro_llm.models and "
                                       "firmware/storyteller.py")
def test_deploy_with_the_real_model_tells_a_story_on_the_board(models_dir, board):
    env = dict(os.environ, MICRO_LLM_MODELS=str(models_dir))
    result = subprocess.run(
        [sys.executable, str(DEPLOY),
         "--port", board.port], capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr
    assert "tok/s" in result.stdout
    story = result.stdout.split("smoke test: a 16-step greedy story\n", 1)[1]

    again = mpremote(board.port, "exec", deploy.SMOKE_TEST)
    assert again.returncode == 0, again.stderr
    # Greedy decoding: the same story both times (the figures that follow it differ).
    assert _story_lines(again.stdout) == _story_lines(story)
    assert _story_lines(story)[0].startswith("Once upon a time, there was a little girl")


def _story_lines(output: str) -> list[str]:
    """The story's lines: those before the figures line (the one with tok/s)."""
    lines = output.splitlines()
    return lines[:next(i for i, line in enumerate(lines) if "tok/s" in line)]


def test_a_corrupt_blob_is_refused_before_anything_is_written(tmp_path, board):
    blob = blob_file(tmp_path, "tiny", 20_000)
    data = bytearray(blob.read_bytes())
    data[-100] ^= 1
    blob.write_bytes(bytes(data))
    result = run_deploy("--port", board.port, "--model", str(blob), "--no-smoke-test")
    assert result.returncode == 2
    assert result.stderr == (f"deploy: error: {blob}: section w3.f32 fails its CRC32 "
                             "check: corrupt blob\n")
    assert board_files(board.folder) == {}


def test_a_profile_for_another_board_is_refused(tmp_path, board):
    blob = blob_file(tmp_path, "tiny", 20_000)
    result = run_deploy("--port", board.port, "--model", str(blob), "--board",
                        "esp32-s3-devkitc-1-n8r8", "--no-smoke-test")
    assert result.returncode == 2
    assert result.stderr == (
        f"deploy: error: the board on {board.port} is a virtual waveshare-esp32-s3-zero, not "
        "esp32-s3-devkitc-1-n8r8: give --board waveshare-esp32-s3-zero, or start the virtual "
        "board with --board esp32-s3-devkitc-1-n8r8\n")
    assert board_files(board.folder) == {}
