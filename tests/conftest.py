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


def run_firmware(code: str, *args: str, heap: int = 8 << 20, timeout: float = 600) -> str:
    """Run `code` in MicroPython with the firmware importable; its stdout, or a failure
    that shows its stderr."""
    from micro_llm import simulator

    done = simulator.run(code, heap_bytes=heap, args=list(args), capture=True,
                         timeout=timeout)
    if done.returncode != 0:
        pytest.fail(f"MicroPython exited {done.returncode}:\n"
                    f"{done.stderr.decode(errors='replace')}")
    return done.stdout.decode("utf-8", errors="replace")


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> Path:
    """A cache folder of this test session's own, so blobs are built once per session."""
    cache = tmp_path_factory.mktemp("cache")
    os.environ["MICRO_LLM_CACHE"] = str(cache)
    return cache


@pytest.fixture(scope="session")
def int8_blob(models_dir, session_cache) -> Path:
    from micro_llm import models
    return models.blob_for("stories260K", "int8")


@pytest.fixture(scope="session")
def f32_blob(models_dir, session_cache) -> Path:
    from micro_llm import models
    return models.blob_for("stories260K", "f32")


@pytest.fixture(scope="session")
def golden_llm_cases(golden_dir) -> list[dict]:
    cases = []
    for name in ("llm/cases.json", "llm/cases_extra.json"):
        cases += load_golden(golden_dir, name)["cases"]
    return cases
