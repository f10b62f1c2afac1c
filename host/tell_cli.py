"""`micro-llm tell`: a story written and read aloud by the firmware, on a simulated board.

    micro-llm tell "Once upon a time" -n 128 -o story.wav

The firmware's own storyteller runs in the MicroPython unix port with the simulator's
`machine` (host/sim): the board profile's I2S pins, an amplifier on them, and a DMA that
plays 22050 frames a second of a virtual clock. stdout carries the story as `micro-llm
story` prints it; the WAV holds what the amplifier played (16-bit mono, 22050 Hz),
underruns included as the silence they were.

simulate() is the same run for tests and benchmarks: it returns the record of what the
hardware received (Recording).
"""

from __future__ import annotations

import argparse
import array
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import boards, models, simulator
from .errors import UserError
from .llm_cli import add_story_options, c_seed, check_sampling, clock_seed
from .voice_cli import voice_settings
from .wavfile import SAMPLE_RATE, check_output, write_wav

# The board's DMA buffers are not in MicroPython's heap; the simulated DMA's ring, its
# thread and the record's buffers are, so the simulator gets this much on top of the
# board's heap budget.
STAND_IN_HEAP = 64 << 10
# Limitation: an underrun longer than this is written to the WAV as this much silence (at a
# large speed factor a simulated gap can last hours).
MAX_GAP_SECONDS = 10
BOARD_SPEED_FACTOR = 40  # the board runs the model about 40 times slower than the simulator

# The code MicroPython runs: set up the board, tell, write the figures; errors as one
# line and status 2. The arguments come as one JSON object.
_TELL = """
import sys, json, simboard, storyteller
a = json.loads(sys.argv[1])
simboard.setup(a["profile"], record=a["record"], speed_factor=a["speed_factor"])
try:
    stats = storyteller.tell(
        a["prompt"], steps=a["steps"], temperature=a["temperature"], topp=a["topp"],
        seed=a["seed"], speed=a["speed"], pitch=a["pitch"], mouth=a["mouth"],
        throat=a["throat"], sing=a["sing"], volume=a["volume"], pause_ms=a["pause_ms"],
        model=a["model"], board=a["profile"], figures=False)
except (ValueError, OSError) as e:
    sys.stderr.write("error: %s\\n" % e)
    sys.exit(2)
except MemoryError:
    sys.stderr.write("error: out of memory: the telling does not fit this heap\\n")
    sys.exit(2)
finally:
    simboard.close()
with open(a["record"] + "/telling.json", "w") as f:
    json.dump({"spoken": stats.spoken, "underruns": stats.underruns,
               "first_sound_ms": stats.first_sound_ms, "positions": stats.positions,
               "board": simboard.stats}, f)
sys.stderr.write(stats.line() + "\\n")
sys.stderr.write(storyteller.speech_line(stats) + "\\n")
"""


@dataclass
class Recording:
    """What the simulated hardware received during a telling."""

    frames: bytes                   # every byte the I2S DMA took, in order
    played: array.array             # the mono samples the amplifier played (no gaps)
    events: list[dict]              # events.jsonl: i2s_init, i2s_write, underrun, ...
    telling: dict = field(default_factory=dict)  # what the firmware reported

    @classmethod
    def read(cls, folder: Path) -> "Recording":
        played = array.array("h")
        played.frombytes((folder / "speaker.raw").read_bytes())
        events = [json.loads(line) for line in
                  (folder / "events.jsonl").read_text().splitlines() if line]
        telling = folder / "telling.json"
        return cls((folder / "i2s.raw").read_bytes(), played, events,
                   json.loads(telling.read_text()) if telling.is_file() else {})

    def gaps(self) -> list[tuple[int, int]]:
        """(played sample before which it fell, frames of silence) for each underrun."""
        return [(e["at"], e["frames"]) for e in self.events if e["event"] == "underrun"]

    def heard(self, max_gap: int = MAX_GAP_SECONDS * SAMPLE_RATE) -> array.array:
        """The samples as a listener heard them: underruns as silence (each at most
        max_gap samples long)."""
        out = array.array("h")
        at = 0
        for where, frames in self.gaps():
            out.extend(self.played[at:where])
            out.extend(array.array("h", bytes(2 * min(frames, max_gap))))
            at = where
        out.extend(self.played[at:])
        return out


@dataclass
class Telling:
    stdout: bytes
    stderr: str
    recording: Recording


def simulate(prompt: str, *, blob: Path, board: str = boards.DEFAULT_BOARD, steps: int = 128,
             temperature: float = 0.0, topp: float = 0.9, seed: int = 1,
             voice: dict | None = None, sing: bool = False, volume: int = 100,
             pause_ms: int = 250, speed_factor: float = BOARD_SPEED_FACTOR,
             heap: int | None = None,
             stdout=subprocess.PIPE, timeout: float | None = None) -> Telling:
    """Tell a story with the firmware in the simulator; raise UserError on failure."""
    profile = boards.load_board(board)
    voice = voice or {"speed": 72, "pitch": 64, "mouth": 128, "throat": 128}
    if heap is None:
        heap = profile.heap_budget_bytes + STAND_IN_HEAP
    with tempfile.TemporaryDirectory(prefix="micro-llm-tell-") as record:
        args = {"profile": str(profile.path), "record": record, "prompt": prompt,
                "steps": steps, "temperature": temperature, "topp": topp, "seed": seed,
                "sing": sing, "volume": volume, "pause_ms": pause_ms, "model": str(blob),
                "speed_factor": speed_factor, **voice}
        argv = [json.dumps(args, ensure_ascii=False)]
        done = simulator.run(_TELL, heap_bytes=heap, args=argv,
                             stdout=stdout, stderr=subprocess.PIPE, timeout=timeout)
        errors = simulator.check(done)
        return Telling(done.stdout or b"", errors, Recording.read(Path(record)))


def wav_bytes(samples: array.array) -> bytes:
    """16-bit samples as a WAV file holds them: little-endian."""
    if sys.byteorder != "little":
        samples = array.array("h", samples)
        samples.byteswap()
    return samples.tobytes()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tell", help="tell a story aloud on a simulated board, into a WAV file",
                       description="Write a story with the firmware's model and read it "
                                   "aloud with SAM, as the board does, in the simulator. "
                                   "The story is printed as `micro-llm story` prints it; "
                                   "the WAV file holds what the speaker played.")
    add_story_options(p, steps=128)
    p.add_argument("-o", "--output", type=Path, required=True, help="the WAV file to write")
    p.add_argument("--board", default=boards.DEFAULT_BOARD,
                   help=f"the board to simulate: {', '.join(boards.board_ids())}")
    p.add_argument("--preset", metavar="NAME", help="a voice from SAM's manual (default SAM)")
    p.add_argument("--speed", type=int, help="1..255, higher is slower")
    p.add_argument("--pitch", type=int, help="0..255, higher is lower")
    p.add_argument("--mouth", type=int, help="0..255, formant 1")
    p.add_argument("--throat", type=int, help="0..255, formant 2")
    p.add_argument("--sing", action="store_true", help="keep the pitch level")
    p.add_argument("--volume", type=int, default=100, help="percent (default 100)")
    p.add_argument("--pause-ms", type=int, default=250,
                   help="silence after a sentence, twice that after a paragraph (default 250)")
    p.add_argument("--speed-factor", type=float, default=BOARD_SPEED_FACTOR,
                   help="how many times faster than real time the simulated board plays, "
                        "which is as if the model ran that much slower: the default, "
                        f"{BOARD_SPEED_FACTOR:g}, is the board's pace; 1 plays in real time")
    p.set_defaults(run=run_tell)


def run_tell(args: argparse.Namespace) -> int:
    try:
        args.prompt.encode("utf-8")
    except UnicodeEncodeError:
        raise UserError("the prompt is not valid UTF-8 text") from None
    if args.steps <= 0:
        raise UserError(f"steps must be 1 or more, not {args.steps}")
    check_sampling(args.temperature, args.topp)
    if not 0 <= args.volume <= 100:
        raise UserError(f"volume is a percentage, 0..100, not {args.volume}")
    if args.pause_ms < 0:
        raise UserError(f"pause must be 0 ms or more, not {args.pause_ms}")
    if args.speed_factor <= 0:
        raise UserError(f"the speed factor must be more than 0, not {args.speed_factor}")
    check_output(args.output)
    voice = voice_settings(args)
    seed = c_seed(args.seed) if args.seed is not None else 0
    if seed == 0:
        seed = clock_seed()
    blob = models.blob_for(args.model, "int8")

    print(f"seed: {seed}", file=sys.stderr)
    sys.stdout.flush()
    started = time.monotonic()
    try:
        told = simulate(args.prompt, blob=blob, board=args.board, steps=args.steps,
                        temperature=args.temperature, topp=args.topp, seed=seed, voice=voice,
                        sing=args.sing, volume=args.volume, pause_ms=args.pause_ms,
                        speed_factor=args.speed_factor, stdout=None)
    except KeyboardInterrupt:
        return 130
    elapsed = time.monotonic() - started
    print(told.stderr, file=sys.stderr)

    heard = told.recording.heard()
    write_wav(args.output, wav_bytes(heard), 2)
    gaps = told.recording.gaps()
    print(f"{args.output}: {len(heard):,} samples, {len(heard) / SAMPLE_RATE:.2f} s "
          f"({len(gaps)} underruns at the DMA), told in {elapsed:.1f} s", file=sys.stderr)
    return 0
