"""What the telling's tests compare against, computed apart from the code under test.

The expected speaker audio is SAM's own output (firmware/sam.py, run in MicroPython) for
each piece of text, converted to 16-bit as the issue states it: (s - 128) << 8, scaled
by the volume, silence 0.
"""

from __future__ import annotations

import array
import json
import tempfile
from pathlib import Path

from micro_llm import simulator

SAMPLE_RATE = 22050
SAM_VOICE = {"speed": 72, "pitch": 64, "mouth": 128, "throat": 128}
DRAIN_SAMPLES = 4096  # the silence the speaker plays out at the end: its DMA's 186 ms

_RENDER = """
import sys, json, sam
pieces, voice, folder = json.loads(sys.argv[1])
for i, text in enumerate(pieces):
    with open("%s/%d.pcm" % (folder, i), "wb") as f:
        for block in sam.render(text, **voice):
            f.write(block)
"""


def sam_pcm(texts: list[str], voice: dict = SAM_VOICE) -> list[bytes]:
    """SAM's unsigned 8-bit PCM for each text, rendered by the firmware's sam module."""
    with tempfile.TemporaryDirectory() as folder:
        done = simulator.run(_RENDER, heap_bytes=8 << 20, capture=True, timeout=300,
                             args=[json.dumps([texts, voice, folder])])
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        return [(Path(folder) / f"{i}.pcm").read_bytes() for i in range(len(texts))]


def to_16bit(pcm: bytes, volume: int = 100) -> array.array:
    """(s - 128) << 8, scaled by volume/100 (volumes whose 256ths are whole: 100, 50, 25)."""
    assert volume * 256 % 100 == 0, "choose a volume whose scale is exact in 256ths"
    return array.array("h", (((s - 128) << 8) * volume // 100 for s in pcm))


def expected_speech(pieces: list[tuple[str, int]], volume: int = 100,
                    voice: dict = SAM_VOICE) -> array.array:
    """Each piece as SAM says it, in 16-bit, followed by its silence (samples)."""
    out = array.array("h")
    for (text, pause), pcm in zip(pieces, sam_pcm([t for t, _ in pieces], voice)):
        out.extend(to_16bit(pcm, volume))
        out.extend(array.array("h", bytes(2 * pause)))
    return out


def stereo_frames(raw: bytes) -> tuple[array.array, array.array]:
    """(left, right) slots of 16-bit stereo I2S frames."""
    samples = array.array("h")
    samples.frombytes(raw)
    return samples[0::2], samples[1::2]


def split_at(played: array.array, expected: array.array) -> tuple[array.array, array.array]:
    """The first len(expected) samples played, and the rest."""
    return played[:len(expected)], played[len(expected):]
