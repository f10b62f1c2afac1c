"""`micro-llm phonemes` and `micro-llm say`: SAM's voice, run by the firmware's own code.

Both commands run firmware/sam.py in the MicroPython unix port (the simulator); the
computer only hands over the text and wraps the PCM that comes back in a WAV file.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from . import simulator
from .errors import UserError
from .firmware_link import firmware_module
from .wavfile import SAMPLE_RATE, check_output, write_wav

log = logging.getLogger(__name__)

voices = firmware_module("sam_voices")

VOICE_HEAP = 512 << 10  # the voice needs about 100 KB with its modules read from source

# The code MicroPython runs. The text travels in a file, byte for byte, as the original
# program received its argument; errors come back as one line with status 2.
_PHONEMES = """
import sys, sam
with open(sys.argv[1], "rb") as f:
    text = f.read()
sys.stdout.write(sam.phonemes(text))
"""

_SAY = """
import sys, sam
text_path, pcm_path, phonetic, speed, pitch, mouth, throat, sing = sys.argv[1:9]
with open(text_path, "rb") as f:
    text = f.read()
try:
    blocks = sam.render(text, phonetic=phonetic == "1", speed=int(speed), pitch=int(pitch),
                        mouth=int(mouth), throat=int(throat), sing=sing == "1")
except ValueError as e:
    sys.stderr.write("error: %s\\n" % e)
    sys.exit(2)
with open(pcm_path, "wb") as f:
    for block in blocks:
        f.write(block)
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("phonemes", help="show SAM's phonemes for English text",
                       description="Print the phoneme string SAM's reciter makes of TEXT, "
                                   "as the original program did (it reads TEXT followed "
                                   "by one space; leading and trailing spaces are pauses).")
    p.add_argument("text", help="English text")
    p.set_defaults(run=run_phonemes)

    s = sub.add_parser("say", help="speak text in SAM's voice into a WAV file",
                       description="Speak TEXT with SAM (22050 Hz, 8-bit unsigned, mono "
                                   "WAV). A preset sets all four voice values; --speed, "
                                   "--pitch, --mouth and --throat given with it override "
                                   "its values.")
    s.add_argument("text", help="English text, or SAM phonemes with --phonetic")
    s.add_argument("-o", "--output", type=Path, required=True, help="the WAV file to write")
    s.add_argument("--phonetic", action="store_true",
                   help='TEXT is in SAM phonemes, e.g. "/HEH4LOW WERLD"')
    s.add_argument("--preset", metavar="NAME",
                   help="a voice from SAM's manual: " + ", ".join(voices.PRESETS))
    s.add_argument("--speed", type=int, help="1..255, higher is slower (SAM: 72)")
    s.add_argument("--pitch", type=int, help="0..255, higher is lower (SAM: 64)")
    s.add_argument("--mouth", type=int, help="0..255, formant 1 (SAM: 128)")
    s.add_argument("--throat", type=int, help="0..255, formant 2 (SAM: 128)")
    s.add_argument("--sing", action="store_true",
                   help="keep the pitch level (no speech intonation), for songs")
    s.set_defaults(run=run_say)


def run_phonemes(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="micro-llm-sam-") as tmp:
        text_path = Path(tmp) / "text"
        text_path.write_bytes(_text_bytes(args.text))
        done = _run(_PHONEMES, [str(text_path)])
    print(done.stdout.decode("ascii"))
    return 0


def voice_settings(args: argparse.Namespace) -> dict[str, int]:
    """The four voice values: the preset's (SAM's by default), then the explicit flags."""
    try:
        voice = voices.preset(args.preset or voices.DEFAULT)
    except ValueError as e:
        raise UserError(str(e)) from None
    for name in ("speed", "pitch", "mouth", "throat"):
        value = getattr(args, name)
        if value is not None:
            voice[name] = value
    return voice


def run_say(args: argparse.Namespace) -> int:
    check_output(args.output)
    voice = voice_settings(args)
    log.info("voice: speed %(speed)d, pitch %(pitch)d, mouth %(mouth)d, throat %(throat)d",
             voice)
    with tempfile.TemporaryDirectory(prefix="micro-llm-sam-") as tmp:
        text_path = Path(tmp) / "text"
        pcm_path = Path(tmp) / "pcm"
        text_path.write_bytes(_text_bytes(args.text))
        argv = [str(text_path), str(pcm_path), "1" if args.phonetic else "0",
                *(str(voice[k]) for k in ("speed", "pitch", "mouth", "throat")),
                "1" if args.sing else "0"]
        started = time.monotonic()
        _run(_SAY, argv)
        elapsed = time.monotonic() - started
        pcm = pcm_path.read_bytes()
    if not pcm:
        raise UserError("nothing to say: the text has no letters, digits or punctuation "
                        "SAM can speak")
    write_wav(args.output, pcm, 1)
    seconds = len(pcm) / SAMPLE_RATE
    log.info("rendered %.2f s of audio in %.2f s in the simulator", seconds, elapsed)
    print(f"{args.output}: {len(pcm):,} samples, {seconds:.2f} s")
    return 0


def _text_bytes(text: str) -> bytes:
    # Bytes that are not UTF-8 reach Python as surrogates; hand them on unchanged.
    return text.encode("utf-8", "surrogateescape")


def _run(code: str, argv: list[str]):
    done = simulator.run(code, heap_bytes=VOICE_HEAP, args=argv, capture=True)
    simulator.check(done)
    return done
