"""Writing the WAV files the commands make: checked before the work, written atomically."""

from __future__ import annotations

import os
import tempfile
import wave
from pathlib import Path

from .errors import UserError

SAMPLE_RATE = 22050


def check_output(path: Path) -> None:
    """Refuse, before any work is done, an output the WAV cannot be written to."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder: give the WAV file's name, e.g. {path}/story.wav")
    if path.exists() and not path.is_file():
        raise UserError(f"{path} is not a regular file: refusing to replace it")
    folder = path.parent
    if not folder.is_dir():
        raise UserError(f"the folder {folder} does not exist: create it first")
    if not os.access(folder, os.W_OK):
        raise UserError(f"cannot write in {folder}: permission denied")


def write_wav(path: Path, frames: bytes, sample_width: int, rate: int = SAMPLE_RATE) -> None:
    """Mono PCM (8-bit unsigned or 16-bit signed little-endian) into a WAV file, by way of
    a temporary file in the same folder: an existing file is replaced only by a whole one."""
    path = Path(path)
    check_output(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            with wave.open(f, "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(sample_width)
                w.setframerate(rate)
                w.writeframes(frames)
            f.flush()
            os.fsync(f.fileno())
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
