"""The storyteller at the board's REPL: a story written by the model and read out by SAM.

    import storyteller
    storyteller.tell("Once upon a time", steps=128, voice="SAM")  # print it and say it
    storyteller.story("Once upon a time", steps=16, temperature=0.0)   # text only
    storyteller.say("Hello, my name is Sam.", voice="Elf")            # voice only
    storyteller.speaker_test()                                         # a tone and "hello"

tell() prints the story as the model writes it and speaks it sentence by sentence,
starting on the first sentence while the rest is still being written. Sampling settings
(steps, temperature, topp, seed) are llm.generate's; voice settings are a preset's name
(sam.PRESETS) and speed, pitch, mouth, throat and sing to change it; volume is a
percentage. Ctrl-C stops the story and the sound at once; the next call starts afresh.

What the board holds (written by tools/deploy.py): /board.json, its profile (the I2S pins
and the status LED), and /micro_llm.json, its settings: the model and, optionally, a
"storyteller" object: tell()'s defaults (steps, voice, volume, pause_ms) and what main.py
does at power-on ("start": "off", "boot" or "button"; "button": a GPIO; "prompt").
Only the telling prepares the text for the voice (narration.py); say() is the original.
"""

import gc
import json
import sys
import time

# The model's modules (llm, kernels) and the voice's are imported when first used, so
# main.py's `import storyteller` at power-on costs little when it has nothing to do.

CONFIG = "/micro_llm.json"  # {"board": id, "model": path, "storyteller": {...}}
PROFILE = "/board.json"     # the board profile: "i2s" pins, "led"

_loaded = None   # (path, model): the model last loaded, kept for the next story
_hardware = {}   # the speaker and the LED, made once: their buffers stay allocated


# ---------------------------------------------------------------- settings and model

def settings(path=None):
    """The board's settings from /micro_llm.json (an empty dict when there are none)."""
    try:
        with open(path or CONFIG) as f:
            return json.load(f)
    except OSError:
        return {}


def _defaults():
    return settings().get("storyteller") or {}


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
    import llm
    path = model_path(model)
    if _loaded is not None and _loaded[0] == path and _loaded[1].steps >= steps:
        return _loaded[1]
    _loaded = None
    gc.collect()
    m = llm.load(path, steps=steps)
    _loaded = (path, m)
    return m


def profile(board=None):
    """The board profile: a dict as given, else the JSON file `board`, else /board.json."""
    if isinstance(board, dict):
        return board
    path = board or PROFILE
    try:
        with open(path) as f:
            return json.load(f)
    except OSError:
        raise OSError("no board profile at %s: deploy with tools/deploy.py --board ID, or "
                      "pass board='/path/to/profile.json'" % path)


def _stdout():
    return getattr(sys.stdout, "buffer", sys.stdout)


# ---------------------------------------------------------------- hardware

def _devices(board, volume):
    """The speaker and the status LED of the board, made on first use and kept."""
    from audio import Speaker
    from led import StatusLED

    prof = profile(board)
    key = json.dumps([prof.get("i2s"), prof.get("led")])
    if _hardware.get("key") != key:
        _hardware.clear()
        gc.collect()
        _hardware["speaker"] = Speaker(prof["i2s"])
        _hardware["led"] = StatusLED(prof.get("led"))
        _hardware["key"] = key
    speaker = _hardware["speaker"]
    speaker.volume = _defaults().get("volume", 50) if volume is None else volume
    return speaker, _hardware["led"]


def _voice(voice, speed, pitch, mouth, throat):
    import sam
    chosen = sam.preset(voice)
    for name, value in (("speed", speed), ("pitch", pitch), ("mouth", mouth),
                        ("throat", throat)):
        if value is not None:
            chosen[name] = value
    return chosen


# ---------------------------------------------------------------- text only

def story(prompt="Once upon a time", steps=128, temperature=1.0, topp=0.9, seed=None,
          model=None):
    """Print a story as it is written, then its figures; returns the llm.Stats.

    steps counts positions, the prompt included; temperature 0 is greedy (the same story
    every time), otherwise top-p sampling with `seed` (default: from the clock).
    """
    import llm
    m = load(model, steps)
    stats = llm.generate(m, prompt, steps=steps, temperature=temperature, topp=topp,
                         seed=seed, out=_stdout())
    print(stats.line())
    return stats


# ---------------------------------------------------------------- voice only

def say(text, voice="SAM", speed=None, pitch=None, mouth=None, throat=None, sing=False,
        phonetic=False, volume=None, board=None):
    """Speak `text` as SAM would (English, or SAM phonemes with phonetic=True); returns
    the number of samples played."""
    import sam
    chosen = _voice(voice, speed, pitch, mouth, throat)
    blocks = sam.render(text, phonetic=phonetic, sing=sing, **chosen)
    speaker, led = _devices(board, volume)
    try:
        led.show(speaking=True)
        for block in blocks:
            speaker.play(block)
            led.spoke()
        speaker.drain()
    finally:
        speaker.close()
        led.off()
    return speaker.samples


def speaker_test(board=None, volume=50):
    """A short tone and a spoken "hello", for checking the amplifier's wiring."""
    import audio
    speaker, led = _devices(board, volume)
    led.show(speaking=True)
    try:
        audio.speaker_test(volume=volume, speaker=speaker)
    finally:
        led.off()


# ---------------------------------------------------------------- the telling

class Telling:
    """One story told aloud: the writer llm.generate streams the text into, and the feeder
    that keeps the speaker supplied with SAM's audio of the sentences written so far.

    Between tokens, write() cuts finished sentences off the text, prepares them for the
    voice and renders audio for as long as the speaker has a free buffer; so the first
    sentence is heard while the model writes the next, and the model runs whenever the
    speaker's buffers are full.
    """

    def __init__(self, speaker, led, lexicon, voice, pause_samples, out):
        import narration
        import sam
        self.narration = narration
        self.sam = sam
        self.speaker = speaker
        self.led = led
        self.lexicon = lexicon
        self.voice = voice
        self.pause_samples = pause_samples
        self.out = out
        self.sentences = narration.Sentences(lexicon)
        self.pieces = []      # (text for SAM, silence after it) not yet begun
        self.spoken = []      # every piece begun, in order, with its silence
        self.blocks = None    # SAM's blocks of the piece being spoken
        self.pause = 0        # the silence that follows it, in samples
        self.started = time.ticks_ms()
        self.first_sound_ms = -1

    def write(self, text):
        self.out.write(text)
        self.sentences.feed(text)
        while True:
            sentence = self.sentences.next()
            if sentence is None:
                break
            self.add(*sentence)
        self.pump()
        self.led.show(thinking=True, speaking=self.speaker.playing)

    def add(self, raw, paragraph):
        """A sentence of the story (bytes): prepared and cut into breaths, to be spoken."""
        n = self.narration
        try:
            text = raw.decode()
        except UnicodeError:
            text = "".join(chr(b) for b in raw if b < 0x80)
        text = n.prepare(text, self.lexicon)
        if not text:
            return
        parts = n.breaths(text)
        pause = self.pause_samples * (2 if paragraph else 1)
        for i in range(len(parts)):
            self.pieces.append((parts[i], pause if i == len(parts) - 1 else 0))

    def pump(self):
        """Render and queue audio while the speaker has a free buffer."""
        speaker = self.speaker
        while speaker.room():
            if self.blocks is None:
                if not self.pieces:
                    return
                text, self.pause = piece = self.pieces.pop(0)
                self.spoken.append(piece)
                self.blocks = self.sam.render(text, **self.voice)
            try:
                block = next(self.blocks)
            except StopIteration:
                # The pause goes out at once: while it plays, the model writes on.
                self.blocks = None
                speaker.silence(self.pause)
                continue
            speaker.play(block)
            if self.first_sound_ms < 0:
                self.first_sound_ms = time.ticks_diff(time.ticks_ms(), self.started)
            self.led.spoke()

    def finish(self):
        """The model has finished: speak what is left, and wait until it has been heard."""
        rest = self.sentences.rest()
        if rest:
            self.add(*rest)
        speaker = self.speaker
        while self.pieces or self.blocks is not None:
            self.pump()
            self.led.show(speaking=True)
            if not speaker.room():
                speaker.wait()
        speaker.drain()


def tell(prompt="Once upon a time", steps=None, temperature=1.0, topp=0.9, seed=None,
         voice=None, speed=None, pitch=None, mouth=None, throat=None, sing=False,
         volume=None, pause_ms=None, model=None, board=None, out=None, figures=True):
    """Print a story as the model writes it and read it aloud, sentence by sentence, as
    soon as each is written; then print its figures (unless figures=False). Returns the
    llm.Stats with the speech's added: first_sound_ms, seconds_spoken, underruns and
    spoken, the pieces of text said with the silence after each (in samples).

    Sampling as story(); voice: a preset's name (default "SAM") and any of speed, pitch,
    mouth, throat and sing; volume in percent; pause_ms of silence after a sentence
    (twice that after a paragraph). Defaults come from /micro_llm.json's "storyteller".
    The story's text goes to `out` (a stream with write(bytes); default stdout).
    """
    import llm
    import narration
    defaults = _defaults()
    steps = steps or defaults.get("steps", 128)
    voice = _voice(voice or defaults.get("voice", "SAM"), speed, pitch, mouth, throat)
    voice["sing"] = sing
    if pause_ms is None:
        pause_ms = defaults.get("pause_ms", 250)
    out = out or _stdout()

    m = load(model, steps)
    speaker, led = _devices(board, volume)
    from audio import RATE
    telling = Telling(speaker, led, narration.load_lexicon(), voice,
                      RATE * pause_ms // 1000, out)
    try:
        led.show(thinking=True)
        stats = llm.generate(m, prompt, steps=steps, temperature=temperature, topp=topp,
                             seed=seed, out=telling)
        telling.finish()
    finally:
        speaker.close()
        led.off()

    stats.first_sound_ms = telling.first_sound_ms
    stats.seconds_spoken = speaker.samples / RATE
    stats.underruns = speaker.underruns
    stats.spoken = telling.spoken
    if figures:
        print(stats.line())
        print(speech_line(stats))
    return stats


def speech_line(stats):
    """The telling's figures for the speech, in one line."""
    return ("spoke %.1f s in %d pieces, first sound after %d ms, %d underruns"
            % (stats.seconds_spoken, len(stats.spoken), stats.first_sound_ms,
               stats.underruns))


# ---------------------------------------------------------------- at power-on

def start():
    """What main.py runs: tell a story at power-on, or at each press of a button, as the
    settings' "storyteller": {"start": ...} says ("off" when it says nothing)."""
    defaults = _defaults()
    how = defaults.get("start", "off")
    if how == "off":
        return
    prompt = defaults.get("prompt", "Once upon a time")
    if how == "boot":
        _tell_safely(prompt)
        return
    if how != "button":
        print("storyteller: start must be off, boot or button, not %r" % how)
        return

    from machine import Pin
    pin = defaults.get("button", 0)
    button = Pin(pin, Pin.IN, Pin.PULL_UP)
    print("storyteller: press the button on GPIO%d for a story (Ctrl-C for the REPL)" % pin)
    while True:
        while button.value():
            time.sleep_ms(20)
        time.sleep_ms(30)  # the contacts bounce
        if button.value() == 0:
            _tell_safely(prompt)
            while button.value() == 0:  # wait for the release
                time.sleep_ms(20)


def _tell_safely(prompt):
    try:
        tell(prompt)
    except Exception as e:  # the REPL must still come up
        print("storyteller: %s: %s" % (type(e).__name__, e))
