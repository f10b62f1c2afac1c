"""The storyteller at the board's REPL.

    import storyteller
    storyteller.story("Once upon a time", steps=16, temperature=0.0)

story() prints the story as the model writes it, then a line of figures (tok/s, heap).
The model is the one /micro_llm.json names (written by the deploy), or model="path".
"""

import gc
import json
import sys

import llm

CONFIG = "/micro_llm.json"  # {"board": id, "model": path, ...}: what the deploy installed

_loaded = None  # (path, model): the last model loaded, kept for the next story


def settings(path=CONFIG):
    """The board's storyteller settings (an empty dict when it has none)."""
    try:
        with open(path) as f:
            return json.load(f)
    except OSError:
        return {}


def model_path(model=None):
    """The blob to tell stories with: `model`, else the one the settings name."""
    if model:
        return model
    path = settings().get("model")
    if not path:
        raise OSError("no model configured in %s: deploy one with tools/deploy.py, or pass "
                      "model='/path/to/model.mlb'" % CONFIG)
    return path


def load(model=None, steps=128):
    """The model, loaded once and kept while the path is the same and its KV cache holds
    `steps` positions."""
    global _loaded
    path = model_path(model)
    if _loaded is not None and _loaded[0] == path and _loaded[1].steps >= steps:
        return _loaded[1]
    _loaded = None
    gc.collect()
    m = llm.load(path, steps=steps)
    _loaded = (path, m)
    return m


def _stdout():
    return getattr(sys.stdout, "buffer", sys.stdout)


def story(prompt="Once upon a time", steps=128, temperature=1.0, topp=0.9, seed=None,
          model=None):
    """Print a story as it is written, then its figures; returns the llm.Stats.

    steps counts positions, the prompt included; temperature 0 is greedy (the same story
    every time), otherwise top-p sampling with `seed` (default: from the clock).
    """
    m = load(model, steps)
    stats = llm.generate(m, prompt, steps=steps, temperature=temperature, topp=topp,
                         seed=seed, out=_stdout())
    print(stats.line())
    return stats
