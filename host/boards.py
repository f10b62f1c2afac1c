"""Board profiles: what the deploy and the firmware know about each supported board.

A profile is a JSON file in `boards/`, named by the board's id. The deploy checks the board
against it and uploads it to the board as `/board.json`, where the firmware reads its pins:

    profile = load_board("waveshare-esp32-s3-zero")
    profile.i2s_pins()      # {'bclk': 7, 'lrclk': 8, 'din': 9}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UserError
from .paths import BOARDS_DIR

DEFAULT_BOARD = "waveshare-esp32-s3-zero"

CHIPS = ("esp32s3",)
PSRAM_MODES = ("none", "quad", "octal")
LED_KINDS = ("gpio", "ws2812")
I2S_SIGNALS = ("bclk", "lrclk", "din")

# ESP32-S3 GPIO numbers that exist, and those a board design must leave alone.
_S3_GPIOS = frozenset(range(0, 22)) | frozenset(range(26, 49))
_S3_FLASH_PINS = frozenset(range(26, 33))  # SPI0/1 to the flash and in-package PSRAM
_S3_OCTAL_PSRAM_PINS = frozenset((33, 34, 35, 36, 37))
_S3_USB_PINS = frozenset((19, 20))
_S3_STRAPPING_PINS = frozenset((0, 3, 45, 46))


class BoardProfileError(UserError):
    """A board profile that is missing or does not describe a board we can use."""


@dataclass(frozen=True)
class BoardProfile:
    """One board's profile, as read from its JSON file."""

    data: dict[str, Any]
    path: Path

    @property
    def id(self) -> str:
        return self.data["id"]

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def chip(self) -> str:
        return self.data["chip"]

    @property
    def flash_bytes(self) -> int:
        return self.data["flash_bytes"]

    @property
    def heap_budget_bytes(self) -> int:
        return self.data["heap_budget_bytes"]

    @property
    def romfs_partition_bytes(self) -> int:
        return self.data["romfs_partition_bytes"]

    @property
    def firmware(self) -> dict[str, Any]:
        return self.data["firmware"]

    def i2s_pins(self) -> dict[str, int]:
        return {signal: self.data["i2s"][signal] for signal in I2S_SIGNALS}

    def to_json(self) -> bytes:
        """The profile as the board stores it in /board.json: compact, keys sorted."""
        return json.dumps(self.data, sort_keys=True, separators=(",", ":")).encode()


def board_ids() -> list[str]:
    """The ids of the boards that have a profile in boards/."""
    return sorted(p.stem for p in BOARDS_DIR.glob("*.json"))


def load_board(name: str = DEFAULT_BOARD) -> BoardProfile:
    """The profile for a board id, or for a path to a profile file; validated."""
    path = Path(name)
    if not (name.endswith(".json") or path.is_file()):
        path = BOARDS_DIR / f"{name}.json"
        if not path.is_file():
            known = ", ".join(board_ids())
            raise BoardProfileError(f"no board profile {name!r}: choose one of {known}")
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise BoardProfileError(f"board profile {path} does not exist") from None
    except json.JSONDecodeError as e:
        raise BoardProfileError(f"board profile {path} is not valid JSON: {e}") from None
    problems = validate(data)
    if problems:
        raise BoardProfileError(f"board profile {path}: {problems[0]}")
    return BoardProfile(data, path)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate(data: dict[str, Any]) -> list[str]:
    """Everything wrong with a profile, one sentence each; empty when it is usable."""
    problems = []
    for key, kind in (("id", str), ("name", str), ("chip", str), ("module", str),
                      ("psram", dict), ("firmware", dict), ("i2s", dict), ("led", dict),
                      ("wiring", list)):
        if not isinstance(data.get(key), kind):
            problems.append(f"{key} is missing or not a {kind.__name__}")
    for key in ("flash_bytes", "heap_budget_bytes", "romfs_partition_bytes"):
        if not _is_int(data.get(key)) or data[key] < 0:
            problems.append(f"{key} is missing or not a byte count")
    if problems:
        return problems

    if data["chip"] not in CHIPS:
        problems.append(f"chip {data['chip']!r} is not one of {', '.join(CHIPS)}")
    psram = data["psram"]
    if psram.get("mode") not in PSRAM_MODES or not _is_int(psram.get("bytes")):
        problems.append("psram needs bytes and a mode of none, quad or octal")
    elif data["heap_budget_bytes"] > max(psram["bytes"], 512 * 1024):
        problems.append("heap_budget_bytes is more than the board's RAM")
    firmware = data["firmware"]
    for key in ("board", "version", "file", "url", "flash_offset"):
        if not isinstance(firmware.get(key), str):
            problems.append(f"firmware.{key} is missing")
    sha = firmware.get("sha256")
    if sha is not None and (not isinstance(sha, str) or len(sha) != 64):
        problems.append("firmware.sha256 must be 64 hex digits or null")
    if sha is None and not firmware.get("sha256_note"):
        problems.append("firmware.sha256 is null without a sha256_note saying why")
    if psram.get("mode") == "octal" and firmware.get("variant") != "SPIRAM_OCT":
        problems.append("a board with octal PSRAM needs the SPIRAM_OCT firmware variant")

    pins = {}
    for signal in I2S_SIGNALS:
        pins[f"i2s.{signal}"] = data["i2s"].get(signal)
    led = data["led"]
    if led.get("kind") not in LED_KINDS:
        problems.append(f"led.kind must be one of {', '.join(LED_KINDS)}")
    pins["led.pin"] = led.get("pin")
    reserved = _S3_FLASH_PINS | _S3_USB_PINS | _S3_STRAPPING_PINS
    if psram.get("mode") == "octal":
        reserved |= _S3_OCTAL_PSRAM_PINS
    seen: dict[int, str] = {}
    for role, pin in pins.items():
        if not _is_int(pin) or pin not in _S3_GPIOS:
            problems.append(f"{role} is {pin!r}, not an ESP32-S3 GPIO number")
        elif pin in reserved:
            problems.append(f"{role} is GPIO{pin}, which this board uses for flash, "
                            "PSRAM, USB or strapping")
        elif pin in seen:
            problems.append(f"{role} and {seen[pin]} are both GPIO{pin}")
        else:
            seen[pin] = role

    signals = {row[0] for row in data["wiring"] if isinstance(row, list) and len(row) == 3}
    for signal in ("VIN", "GND", "BCLK", "LRC", "DIN"):
        if signal not in signals:
            problems.append(f"the wiring table has no row for the MAX98357A's {signal}")
    return problems


def wiring_markdown(profile: BoardProfile) -> str:
    """The profile's MAX98357A wiring as a Markdown table, as the README shows it."""
    lines = ["| MAX98357A | board pin | note |", "| --- | --- | --- |"]
    for amp_pin, board_pin, note in profile.data["wiring"]:
        lines.append(f"| {amp_pin} | {board_pin} | {note} |")
    return "\n".join(lines) + "\n"
