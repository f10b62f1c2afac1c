"""Import firmware modules that hold facts both sides share (the blob layout).

The firmware folder is MicroPython code for the board; the modules imported from here are
written in the subset CPython also runs, so the layout exists once, in firmware/.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from .paths import FIRMWARE_DIR


def firmware_module(name: str) -> ModuleType:
    """firmware/<name>.py, imported under a private name so it cannot shadow anything."""
    qualified = f"micro_llm._firmware_{name}"
    if qualified in sys.modules:
        return sys.modules[qualified]
    spec = importlib.util.spec_from_file_location(qualified, FIRMWARE_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[qualified] = module
    spec.loader.exec_module(module)
    return module


blobfmt = firmware_module("blobfmt")
