"""SAM, the Software Automatic Mouth (1982): English text to speech in 8-bit PCM.

    import sam
    sam.phonemes("I am Sam")                  # ' AY4 AEM SAEM '
    for block in sam.render("Hello, my name is Sam.", **sam.preset("elf")):
        audio.write(block)                    # unsigned 8-bit mono at sam.SAMPLE_RATE

API
- phonemes(text) -> str: the reciter's phoneme string, as the original's command line
  produced it for `text` (it reads the text followed by one space).
- render(text, phonetic=False, speed=72, pitch=64, mouth=128, throat=128, sing=False):
  an iterator of memoryview blocks of unsigned 8-bit PCM at 22050 Hz, each BLOCK bytes
  but the last; a block is valid until the next one is asked for. Voice and phonetic
  text are checked before it returns: ValueError (PhonemeError for phonetic text names
  the bad phoneme and its position). speed 1..255 (higher is slower), pitch, mouth and
  throat 0..255; sing leaves out the speech melody that follows the vowels, so the
  pitch stays where `pitch`, stress and the end of a sentence put it.
- say(text, write, **voice) -> int: calls write(block) for every block; returns the
  number of samples.
- PRESETS and preset(name): the voices of the original manual, as keyword arguments.

Text the original could say in one go (up to 252 characters, and what it writes for
them) is said exactly as it said it, sample for sample. Longer text is said piece by
piece: whole sentences, then clauses, then words, each piece as the original would have
said it, with the voice carrying on from one piece to the next. Memory stays the same
for any length of text, apart from one folded copy of the text itself.
"""

from micropython import const

from sam_phonemes import (
    PhonemeError, PhonemeList, check_phonetic, match_phoneme, stress_mark,
)
from sam_reciter import fold, reciter
from sam_render import BLOCK, SAMPLE_RATE, Renderer
from sam_voices import PRESETS, preset

_ONE_GO = const(252)  # characters the original reads in one go, in either mode


# ------------------------------------------------------------------ pieces of text

class _Pieces:
    """Cuts text into pieces the original could say in one go, preparing each in turn."""

    def __init__(self, text, phonetic):
        self.text = text
        self.phonetic = phonetic
        self.list = PhonemeList()
        self.said = b""  # the reciter's phonemes for the piece just prepared

    def _fits(self, lo, hi):
        text = self.text
        if hi - lo < len(text):
            # A piece of a longer text is said without the spaces around it.
            while lo < hi and text[lo] <= 0x20:
                lo += 1
            while hi > lo and text[hi - 1] <= 0x20:
                hi -= 1
        piece = text[lo:hi]
        if self.phonetic:
            # The original's command line adds a space after the text.
            return hi - lo <= _ONE_GO and self.list.prepare(piece + b" ")
        said = reciter(piece)
        if said is None:
            return False
        self.said = said
        return self.list.prepare(said)

    def __iter__(self):
        """Yields once per piece, when self.list (and self.said) hold it."""
        return self._piece(0, len(self.text), 0)

    def _piece(self, lo, hi, level):
        if lo >= hi:
            return
        if self._fits(lo, hi):
            yield
        elif level < 3:
            yield from self._split(lo, hi, level)
        else:
            yield from self._halve(lo, hi)

    def _split(self, lo, hi, level):
        # Level 0 cuts at sentence ends, 1 at clause ends, 2 between words. Sentences
        # are said one by one; clauses and words are gathered while the piece fits.
        start = lo
        end = self._next_cut(lo, hi, level)
        if end == hi:
            yield from self._piece(lo, hi, level + 1)
            return
        while start < hi:
            if level:
                following = self._next_cut(end, hi, level)
                while end < hi and self._fits(start, following):
                    end = following
                    following = self._next_cut(end, hi, level)
            yield from self._piece(start, end, level + 1)
            start = end
            end = self._next_cut(end, hi, level)

    def _next_cut(self, i, hi, level):
        """The first place after i where text[:hi] may be cut at `level`, or hi."""
        while True:
            i = self._next_break(i, hi, level)
            # A stress mark must stay with the phoneme (or pause) before it.
            if i >= hi or not self.phonetic or not stress_mark(self.text[i]):
                return i

    def _next_break(self, i, hi, level):
        text = self.text
        if level == 2:
            while i < hi and text[i] > 0x20:
                i += 1
            while i < hi and text[i] <= 0x20:
                i += 1
            return i
        if level == 0:
            marks = b".?" if self.phonetic else b".!?\n"
        else:
            marks = b",-" if self.phonetic else b",;:-"
        while i < hi:
            c = text[i]
            i += 1
            if c in marks:
                while not self.phonetic and i < hi and text[i] in b"\"')":
                    i += 1  # closing quotes and brackets stay with their sentence
                if i >= hi or text[i] <= 0x20:
                    return i
        return hi

    def _halve(self, lo, hi):
        # A word too long for the original: cut in two, at a phoneme boundary if phonetic.
        mid = (lo + hi) // 2
        if self.phonetic:
            i = lo
            while i < mid or (i < hi and stress_mark(self.text[i])):
                _, size = match_phoneme(self.text, i)
                i += size or 1
            mid = i
        if mid <= lo or mid >= hi:
            if self._fits(lo, hi):
                yield
            return
        for a, b in ((lo, mid), (mid, hi)):
            if self._fits(a, b):
                yield
            else:
                yield from self._halve(a, b)


def _phonetic_text(text):
    """Phonetic input as the parser reads it (upper case ASCII), checked."""
    if not isinstance(text, str) and max(text, default=0) > 126:
        try:
            text = bytes(text).decode()  # to name a bad character, not one of its bytes
        except UnicodeError:
            pass
    if isinstance(text, str):
        for i, ch in enumerate(text):
            if ord(ch) > 126:
                raise PhonemeError("invalid phoneme '%s' at position %d" % (ch, i))
        data = text.encode()
    else:
        data = bytes(text)
    data = bytes(c - 0x20 if 0x61 <= c <= 0x7A else c for c in data)
    check_phonetic(data)
    return data


# ------------------------------------------------------------------ the API

def phonemes(text):
    """The reciter's phonemes for English `text` (str or bytes), as the original wrote
    them, leading and trailing pauses (spaces) included."""
    pieces = _Pieces(fold(text), False)
    out = []
    for _ in pieces:
        out.append(pieces.said.decode())
    return "".join(out)


def render(text, phonetic=False, speed=72, pitch=64, mouth=128, throat=128, sing=False):
    """An iterator of PCM blocks speaking `text` (see the module's docstring)."""
    voice = Renderer(speed=speed, pitch=pitch, mouth=mouth, throat=throat, sing=sing)
    # Limitation: the text is held whole, as one folded copy, while it is spoken; only
    # the audio is streamed.
    data = _phonetic_text(text) if phonetic else fold(text)
    return _stream(_Pieces(data, phonetic), voice)


def _stream(pieces, voice):
    for _ in pieces:
        for block in voice.render(pieces.list):
            yield block
    for block in voice.flush():
        yield block


def say(text, write, **voice):
    """Speak `text` into write(block); returns the number of samples written."""
    n = 0
    for block in render(text, **voice):
        write(block)
        n += len(block)
    return n
