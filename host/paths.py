"""Where the project's folders and the user's data live."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE_DIR = ROOT / "firmware"
BOARDS_DIR = ROOT / "boards"
MODELS_DIR = ROOT / "models"
SIM_DIR = Path(__file__).resolve().parent / "sim"


def cache_dir() -> Path:
    """The cache for downloaded checkpoints and built blobs: $MICRO_LLM_CACHE, else
    ~/.cache/micro-llm (or under $XDG_CACHE_HOME)."""
    named = os.environ.get("MICRO_LLM_CACHE")
    if named:
        return Path(named)
    base = os.environ.get("XDG_CACHE_HOME")
    root = Path(base) if base else Path.home() / ".cache"
    return root / "micro-llm"


def models_env_dir() -> Path | None:
    """The directory named by MICRO_LLM_MODELS, if set."""
    value = os.environ.get("MICRO_LLM_MODELS")
    return Path(value) if value else None


def golden_dir() -> Path | None:
    """The golden reference outputs named by MICRO_LLM_GOLDEN, if set."""
    value = os.environ.get("MICRO_LLM_GOLDEN")
    return Path(value) if value else None
