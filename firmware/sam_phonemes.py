"""SAM's phoneme list: phonetic text parsed, then shaped by the original's prosody rules.

    from sam_phonemes import PhonemeList
    phonemes = PhonemeList()
    if phonemes.prepare(b" /HEH4LOW WERLD "):
        ...  # phonemes.index / .length / .stress, END-terminated, BREAK between chunks

`prepare` runs the original program's steps in its order: parse the names and stress
marks, rewrite phoneme pairs (diphthong glides, flaps, T R -> CH R, ...), copy stress to
the consonant before a stressed vowel, set lengths from stress, adjust lengths around
punctuation and consonants, split stop consonants into their closure and release parts,
and insert breaks so that no chunk is longer than the renderer's 256 frames.

The list has the original's size (256 entries). `prepare` returns False when the text
would not fit in it, as the original would then have dropped phonemes; the caller
splits such text and tries again.
"""

from micropython import const

from sam_tables import (
    FLAGS, FLAGS2, LENGTHS, LENGTHS_STRESSED, PHONEME_NAME1, PHONEME_NAME2,
)

END = const(255)    # end of the list
BREAK = const(254)  # end of a chunk: the renderer renders the list chunk by chunk

_SIZE = const(256)
_MAX_TEXT = const(253)  # phonetic characters the original's parser takes in one go
_MAX_END = const(254)   # the last place END can have in the original's list
_PHONEMES = const(81)
_BREATH_FRAMES = const(232)  # a chunk ends before this many frames

# FLAGS bits
_PLOSIVE = const(0x01)
_STOP = const(0x02)
_VOICED = const(0x04)
_CLOSURE = const(0x08)
_DIPHTHONG = const(0x10)
_DIPHTHONG_Y = const(0x20)
_CONSONANT = const(0x40)
_VOWEL = const(0x80)
# FLAGS2 bits
_PUNCT = const(0x01)
_ALVEOLAR = const(0x04)
_NASAL = const(0x08)
_LIQUID = const(0x10)
_FRICATIVE = const(0x20)

# Phoneme numbers the rules name
_PAUSE = const(0)
_PERIOD = const(1)
_QUESTION = const(2)
_IY = const(5)
_AX = const(13)
_UX = const(16)
_RX = const(18)
_LX = const(19)
_WX = const(20)
_YX = const(21)
_R = const(23)
_L = const(24)
_M = const(27)
_N = const(28)
_DX = const(30)
_Q = const(31)
_S = const(32)
_HH = const(36)   # /H
_HX = const(37)   # /X
_Z = const(38)
_CH = const(42)
_J = const(44)
_UW = const(53)
_D = const(57)
_G = const(60)
_GX = const(63)
_T = const(69)
_K = const(72)
_KX = const(75)
_UL = const(78)
_UM = const(79)
_UN = const(80)

_END_OF_INPUT = const(0x9B)  # the original's end mark of phonetic text


class PhonemeError(ValueError):
    """Phonetic text that names no phoneme: the message says what and where."""


def _flags(p):
    # END, BREAK and pauses read outside the table in the original: no class bits.
    return FLAGS[p] if p < _PHONEMES else 0


def _flags2(p):
    return FLAGS2[p] if p < _PHONEMES else 0


def match_phoneme(text, i):
    """The phoneme named at text[i] and how many characters its name takes, or (-1, 0).

    As the original: first a two-letter name, then a one-letter name ("*" as second
    letter in the tables).
    """
    c = text[i]
    c2 = text[i + 1] if i + 1 < len(text) else 0
    for p in range(_PHONEMES):
        if PHONEME_NAME1[p] == c and PHONEME_NAME2[p] != 0x2A and PHONEME_NAME2[p] == c2:
            return p, 2
    for p in range(_PHONEMES):
        if PHONEME_NAME2[p] == 0x2A and PHONEME_NAME1[p] == c:
            return p, 1
    return -1, 0


def stress_mark(c):
    """Stress 1..8 of the stress mark `c` (a digit 1..8), or 0 if it is none."""
    return c - 0x30 if 0x31 <= c <= 0x38 else 0


def check_phonetic(text, offset=0):
    """Raise PhonemeError at the first character of `text` that the parser rejects."""
    n = len(text)
    i = 0
    seen = False
    while i < n:
        p, size = match_phoneme(text, i)
        if size:
            i += size
            seen = True
            continue
        c = text[i]
        if not stress_mark(c):
            shown = "'%s'" % chr(c) if 32 < c < 127 else "byte 0x%02X" % c
            raise PhonemeError("invalid phoneme %s at position %d" % (shown, offset + i))
        if not seen:
            raise PhonemeError("stress mark '%s' at position %d follows no phoneme" % (
                chr(c), offset + i))
        i += 1


class PhonemeList:
    """The original's phoneme list: 256 entries of phoneme, length and stress."""

    def __init__(self):
        self.index = bytearray(_SIZE)
        self.length = bytearray(_SIZE)
        self.stress = bytearray(_SIZE)
        self.count = 0        # where END is
        self.overflow = False

    def prepare(self, text):
        """Parse phonetic `text` and apply the prosody rules; False if it does not fit.

        `text` is what the original's parser reads: for phonetic input the text and the
        space its command line adds, for English the reciter's output.
        """
        self.overflow = False
        if not self.parse(text):
            return False
        self.rewrite()
        self.copy_stress()
        self.set_lengths()
        self.adjust_lengths()
        self.split_stops()
        self.insert_breaths()
        return not self.overflow

    # ------------------------------------------------------------- parsing

    def parse(self, text):
        """Phoneme names and stress marks to the list; False if too many for it."""
        n = len(text)
        if n > _MAX_TEXT:
            return False
        index = self.index
        stress = self.stress
        for k in range(_SIZE):
            stress[k] = 0
        count = 0
        i = 0
        while i < n:
            p, size = match_phoneme(text, i)
            if size:
                index[count] = p
                count += 1
                i += size
                continue
            mark = stress_mark(text[i])
            if not mark or not count:
                check_phonetic(text)  # raises with the position
            stress[count - 1] = mark
            i += 1
        index[count] = END
        self.count = count
        return True

    def _insert(self, pos, phoneme, length, stress):
        """Insert at pos, moving the rest (END included) one place on."""
        n = self.count
        if n >= _MAX_END:
            self.overflow = True  # the original would lose its last phoneme here
            return
        for a in (self.index, self.length, self.stress):
            a[pos + 1:n + 2] = a[pos:n + 1]
        self.index[pos] = phoneme
        self.length[pos] = length
        self.stress[pos] = stress
        self.count = n + 1

    def _prior(self, pos):
        # At pos 0 the original reads the byte before its list: a pause in every build.
        return self.index[pos - 1] if pos else _PAUSE

    # ------------------------------------------------------------- rewriting

    def rewrite(self):
        """Replace and add phonemes by the neighbours' rules (the original's Parser2)."""
        index = self.index
        stress = self.stress
        pos = 0
        while True:
            p = index[pos]
            if p == END:
                return
            if p == _PAUSE:
                pos += 1
                continue
            f = FLAGS[p]
            prior = self._prior(pos)

            if f & _DIPHTHONG:
                # A diphthong ends in a glide: YX after those ending in IY, else WX.
                self._insert(pos + 1, _YX if f & _DIPHTHONG_Y else _WX, 0, stress[pos])
                self._rewrite_uw_ch_j(pos, p)
            elif p == _UL:
                self._split_syllabic(pos, _L)
            elif p == _UM:
                self._split_syllabic(pos, _M)
            elif p == _UN:
                self._split_syllabic(pos, _N)
            elif f & _VOWEL and stress[pos]:
                # Stressed vowel, pause, stressed vowel: a glottal stop before the second.
                if index[pos + 1] == _PAUSE:
                    q = index[pos + 2]
                    if q != END and _flags(q) & _VOWEL and stress[pos + 2]:
                        self._insert(pos + 2, _Q, 0, 0)
            elif p == _R:
                if prior == _T:
                    index[pos - 1] = _CH
                elif prior == _D:
                    index[pos - 1] = _J
                elif _flags(prior) & _VOWEL:
                    index[pos] = _RX
            elif p == _L and _flags(prior) & _VOWEL:
                index[pos] = _LX
            elif prior == _G and p == _S:
                index[pos] = _Z
            elif p == _G:
                q = index[pos + 1]
                if q != END and not _flags(q) & _DIPHTHONG_Y:
                    index[pos] = _GX
            else:
                if p == _K:
                    q = index[pos + 1]
                    if q == END or not _flags(q) & _DIPHTHONG_Y:
                        index[pos] = _KX
                        p = _KX
                        f = FLAGS[_KX]
                if FLAGS[p] & _PLOSIVE and prior == _S:
                    index[pos] = p - 12  # S P -> S B, S T -> S D, S K -> S G
                elif not f & _PLOSIVE:
                    p = index[pos]
                    self._rewrite_uw_ch_j(pos, p)
                if p == _T or p == _D:
                    # T or D after a vowel and before an unstressed vowel is a flap.
                    if _flags(self._prior(pos)) & _VOWEL:
                        q = index[pos + 1]
                        if q == _PAUSE:
                            q = index[pos + 2]
                        if _flags(q) & _VOWEL and not stress[pos + 1]:
                            index[pos] = _DX
            pos += 1

    def _rewrite_uw_ch_j(self, pos, p):
        if p == _UW:
            if _flags2(self._prior(pos)) & _ALVEOLAR:
                self.index[pos] = _UX
        elif p == _CH:
            self._insert(pos + 1, _CH + 1, 0, self.stress[pos])
        elif p == _J:
            self._insert(pos + 1, _J + 1, 0, self.stress[pos])

    def _split_syllabic(self, pos, consonant):
        # UL, UM, UN -> AX L, AX M, AX N
        self.index[pos] = _AX
        self._insert(pos + 1, consonant, 0, self.stress[pos])

    # ------------------------------------------------------------- stress and length

    def copy_stress(self):
        """A consonant before a stressed vowel takes the vowel's stress plus one."""
        index = self.index
        stress = self.stress
        pos = 0
        while index[pos] != END:
            if FLAGS[index[pos]] & _CONSONANT:
                q = index[pos + 1]
                if q != END and _flags(q) & _VOWEL:
                    s = stress[pos + 1]
                    if s and not s & 0x80:
                        stress[pos] = s + 1
            pos += 1

    def set_lengths(self):
        index = self.index
        stress = self.stress
        length = self.length
        pos = 0
        while index[pos] != END:
            s = stress[pos]
            table = LENGTHS if s == 0 or s & 0x80 else LENGTHS_STRESSED
            length[pos] = table[index[pos]]
            pos += 1

    def adjust_lengths(self):
        """The original's length rules around punctuation, vowels and consonants."""
        index = self.index
        length = self.length

        # Lengthen by half (plus one) the voiced and non-fricative phonemes from the last
        # vowel up to each punctuation mark. The original gives up at the first mark with
        # no vowel before it.
        x = 0
        while index[x] != END:
            if not _flags2(index[x]) & _PUNCT:
                x += 1
                continue
            mark = x
            x -= 1
            while x > 0 and not _flags(index[x]) & _VOWEL:
                x -= 1
            if x <= 0:
                break
            while x != mark:
                p = index[x]
                if not _flags2(p) & _FRICATIVE or _flags(p) & _VOICED:
                    a = length[x]
                    length[x] = ((a >> 1) + a + 1) & 0xFF
                x += 1
            x += 1

        pos = 0
        while index[pos] != END:
            p = index[pos]
            f = FLAGS[p]
            if f & _VOWEL:
                q = index[pos + 1]
                if not _flags(q) & _CONSONANT:
                    # <vowel> <RX or LX> <consonant>: the vowel one frame shorter
                    if q == _RX or q == _LX:
                        if _flags(index[pos + 2]) & _CONSONANT:
                            length[pos] = (length[pos] - 1) & 0xFF
                elif not FLAGS[q] & _VOICED:
                    if FLAGS[q] & _PLOSIVE:
                        # <vowel> <unvoiced plosive>: the vowel 1/8 shorter
                        length[pos] -= length[pos] >> 3
                else:
                    # <vowel> <voiced consonant>: the vowel a quarter (plus one) longer
                    a = length[pos]
                    length[pos] = ((a >> 2) + a + 1) & 0xFF
            elif FLAGS2[p] & _NASAL:
                q = index[pos + 1]
                if q != END and _flags(q) & _STOP:
                    length[pos + 1] = 6
                    length[pos] = 5
            elif f & _STOP:
                # A stop consonant before another (pauses between them allowed): both
                # half as long, plus one.
                x = pos + 1
                while index[x] == _PAUSE:
                    x += 1
                q = index[x]
                if q != END and _flags(q) & _STOP:
                    length[x] = (length[x] >> 1) + 1
                    length[pos] = (length[pos] >> 1) + 1
            elif FLAGS2[p] & _LIQUID:
                length[pos] = (length[pos] - 2) & 0xFF
            pos += 1

    # ------------------------------------------------------------- stops and breaths

    def split_stops(self):
        """Add the two release parts after each stop consonant (phonemes p+1 and p+2).

        A plosive followed by a closure (another stop, a nasal, a flap) or by /H or /X
        keeps its closure only.
        """
        index = self.index
        pos = 0
        while True:
            p = index[pos]
            if p == END:
                return
            f = _flags(p)
            if f & _STOP:
                if f & _PLOSIVE:
                    x = pos + 1
                    while index[x] == _PAUSE:
                        x += 1
                    q = index[x]
                    if q != END and (_flags(q) & _CLOSURE or q == _HH or q == _HX):
                        pos += 1
                        continue
                s = self.stress[pos]
                self._insert(pos + 1, p + 1, LENGTHS[p + 1], s)
                self._insert(pos + 2, p + 2, LENGTHS[p + 2], s)
                pos += 2
            pos += 1

    def insert_breaths(self):
        """End a chunk after each punctuation mark, and at the last pause before a
        chunk would reach 232 frames (the pause becomes a glottal stop, Q).

        Where a chunk has no pause to break at (one long word), the original went round
        in circles for ever; here the chunk ends before the phoneme that fills it.
        """
        index = self.index
        length = self.length
        last_pause = -1
        frames = 0
        pos = 0
        while True:
            p = index[pos]
            if p == END:
                return
            frames += length[pos]
            if frames < _BREATH_FRAMES:
                if p == BREAK:
                    pass
                elif not _flags2(p) & _PUNCT:
                    if p == _PAUSE:
                        last_pause = pos
                else:
                    frames = 0
                    pos += 1
                    self._insert(pos, BREAK, 0, 0)
                    last_pause = -1
            elif last_pause >= 0:
                pos = last_pause
                index[pos] = _Q
                length[pos] = 4
                self.stress[pos] = 0
                frames = 0
                pos += 1
                self._insert(pos, BREAK, 0, 0)
                last_pause = -1
            else:
                self._insert(pos, BREAK, 0, 0)
                pos += 1
                frames = length[pos]
            if self.overflow:
                return
            pos += 1
