"""The voices of SAM's manual, by name: speed, pitch, mouth and throat.

    from sam_voices import preset
    preset("little robot")   # {'speed': 92, 'pitch': 60, 'mouth': 190, 'throat': 190}

Plain Python that CPython runs too, so the command line on the computer reads the same
table as the board.
"""

# The manual lists each voice as speed / pitch / throat / mouth; mouth sets formant 1,
# throat formant 2.
PRESETS = {
    "SAM": {"speed": 72, "pitch": 64, "throat": 128, "mouth": 128},
    "Elf": {"speed": 72, "pitch": 64, "throat": 110, "mouth": 160},
    "Little Robot": {"speed": 92, "pitch": 60, "throat": 190, "mouth": 190},
    "Stuffy Guy": {"speed": 82, "pitch": 72, "throat": 110, "mouth": 105},
    "Little Old Lady": {"speed": 82, "pitch": 32, "throat": 145, "mouth": 145},
    "Extra-Terrestrial": {"speed": 100, "pitch": 64, "throat": 150, "mouth": 200},
}

DEFAULT = "SAM"


def _key(name):
    return "".join(c for c in name.lower() if c.isalpha())


def preset(name):
    """The voice `name` as keyword arguments (any case; spaces, hyphens and the like
    ignored, so "little-robot" is "Little Robot")."""
    for known, voice in PRESETS.items():
        if _key(known) == _key(name):
            return dict(voice)
    raise ValueError("no voice %r; the voices are: %s" % (name, ", ".join(PRESETS)))
