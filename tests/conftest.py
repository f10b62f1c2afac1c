"""Shared fixtures: the real model, the golden outputs and the MicroPython interpreter.

With MICRO_LLM_REQUIRE_DATA=1 (as CI sets it) a missing model or golden file fails the
run; otherwise the tests that need it are skipped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from micro_llm import paths
from micro_llm.simulator import SimulatorError, find_micropython

REQUIRE_DATA = os.environ.get("MICRO_LLM_REQUIRE_DATA") == "1"


def _missing(what: str):
    if REQUIRE_DATA:
        pytest.fail(f"{what} (MICRO_LLM_REQUIRE_DATA=1)")
    pytest.skip(what)


@pytest.fixture(scope="session")
def models_dir() -> Path:
    d = paths.models_env_dir()
    if d is None or not (d / "stories260K.bin").is_file() or not (d / "tok512.bin").is_file():
        _missing("MICRO_LLM_MODELS does not name a folder with stories260K.bin and tok512.bin")
    return d


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    d = paths.golden_dir()
    if d is None or not d.is_dir():
        _missing("MICRO_LLM_GOLDEN does not name the golden folder")
    return d


def load_golden(golden_dir: Path, relative: str):
    path = golden_dir / relative
    if not path.is_file():
        _missing(f"golden file {relative} is missing")
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def micropython() -> list[str]:
    try:
        return find_micropython()
    except SimulatorError as e:
        pytest.fail(str(e)) if REQUIRE_DATA else pytest.skip(str(e))
