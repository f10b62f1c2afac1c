"""Board profiles: each supported board has a valid one, and the README shows its wiring."""

from __future__ import annotations

import copy
import json

import pytest

from micro_llm import boards
from micro_llm.paths import BOARDS_DIR, ROOT

BOARD_IDS = ["esp32-s3-devkitc-1-n8r8", "seeed-xiao-esp32s3", "waveshare-esp32-s3-zero"]


def raw(board_id: str) -> dict:
    return json.loads((BOARDS_DIR / f"{board_id}.json").read_text())


def test_the_three_boards_have_valid_profiles():
    assert boards.board_ids() == BOARD_IDS
    for board_id in BOARD_IDS:
        assert boards.validate(raw(board_id)) == [], board_id
        assert boards.load_board(board_id).id == board_id


def test_the_default_board_is_the_waveshare_with_4_mb_flash_2_mb_quad_psram_1_mb_heap():
    profile = boards.load_board()
    assert profile.id == "waveshare-esp32-s3-zero"
    assert profile.data["module"] == "ESP32-S3FH4R2"
    assert profile.flash_bytes == 4 * 1024 * 1024
    assert profile.data["psram"] == {"bytes": 2 * 1024 * 1024, "mode": "quad"}
    assert profile.heap_budget_bytes == 1048576
    assert profile.firmware["variant"] is None
    assert profile.data["led"] == {"pin": 21, "kind": "ws2812", "color_order": "GRB"}


@pytest.mark.parametrize("board_id", ["esp32-s3-devkitc-1-n8r8", "seeed-xiao-esp32s3"])
def test_octal_psram_boards_flash_the_spiram_oct_image(board_id):
    firmware = boards.load_board(board_id).firmware
    assert firmware["variant"] == "SPIRAM_OCT"
    assert firmware["file"] == "ESP32_GENERIC_S3-SPIRAM_OCT-20251209-v1.27.0.bin"
    assert firmware["url"].endswith("/" + firmware["file"])


def test_an_i2s_pin_on_the_octal_psram_is_refused():
    data = raw("esp32-s3-devkitc-1-n8r8")
    data["i2s"]["din"] = 36
    assert boards.validate(data) == [
        "i2s.din is GPIO36, which this board uses for flash, PSRAM, USB or strapping"]


def test_two_roles_on_one_pin_are_refused():
    data = raw("waveshare-esp32-s3-zero")
    data["led"]["pin"] = data["i2s"]["bclk"]
    assert boards.validate(data) == ["led.pin and i2s.bclk are both GPIO7"]


def test_a_missing_sha256_needs_a_note_saying_why():
    data = copy.deepcopy(raw("seeed-xiao-esp32s3"))
    del data["firmware"]["sha256_note"]
    assert boards.validate(data) == [
        "firmware.sha256 is null without a sha256_note saying why"]


def test_an_octal_board_with_the_standard_image_is_refused():
    data = raw("seeed-xiao-esp32s3")
    data["firmware"]["variant"] = None
    assert boards.validate(data) == [
        "a board with octal PSRAM needs the SPIRAM_OCT firmware variant"]


def test_an_unknown_board_names_the_known_ones():
    with pytest.raises(boards.BoardProfileError) as error:
        boards.load_board("esp32-s3-box")
    assert str(error.value) == (
        "no board profile 'esp32-s3-box': choose one of esp32-s3-devkitc-1-n8r8, "
        "seeed-xiao-esp32s3, waveshare-esp32-s3-zero")


@pytest.mark.parametrize("board_id", BOARD_IDS)
def test_wiring_table_connects_the_profiles_i2s_pins(board_id):
    profile = boards.load_board(board_id)
    rows = {amp: (pin, note) for amp, pin, note in profile.data["wiring"]}
    for amp_pin, signal in (("BCLK", "bclk"), ("LRC", "lrclk"), ("DIN", "din")):
        gpio = profile.i2s_pins()[signal]
        label, note = rows[amp_pin]
        assert label == str(gpio) or f"GPIO{gpio}" in note or label == f"GP{gpio}", amp_pin
    assert rows["VIN"][0] == "5V"
    assert rows["GND"][0] == "GND"


@pytest.mark.parametrize("board_id", BOARD_IDS)
def test_readme_shows_each_boards_wiring_table(board_id):
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Deploy to a board", 1)[1].split("## Licence", 1)[0]
    profile = boards.load_board(board_id)
    assert f"**{profile.name}** (`{board_id}`)\n\n" + boards.wiring_markdown(profile) in section
