"""The reciter: English text to SAM phonemes, by the 1982 program's letter-to-sound rules.

    from sam_reciter import fold, reciter
    reciter(fold("I am Sam"))      # b" AY4 AEM SAEM "

`fold` turns any text (str, or bytes in UTF-8 or Latin-1) into the reciter's 7-bit
alphabet; `reciter` then reads it exactly as the original's command line did: the text
followed by one space. It returns None where the original could not say the text in one
go (it stopped writing phonemes at a word break past 120 characters, and had room for
252 characters of text and 253 of phonemes); sam.py splits such text first.
"""

from micropython import const

from sam_tables import CHAR_FLAGS, RULES, RULES_PUNCT

# CHAR_FLAGS bits (see sam_tables)
_LETTER = const(0x80)
_VOWEL = const(0x40)
_CONSONANT = const(0x20)
_SIBILANT = const(0x10)
_VOICED = const(0x08)
_ALVEOLAR = const(0x04)
_PUNCT = const(0x02)
_DIGIT = const(0x01)

MAX_TEXT = const(252)        # characters of text the original reads in one go
MAX_PHONEMES = const(253)    # characters of phonemes it can write and parse
_BREAK_LIMIT = const(120)    # it stops at the first word break written past this

_END_MARK = const(0x5B)      # "[": the end mark the original appends to the text
_BEFORE_START = const(27)    # what the original finds left of its buffer: ESC, no class


# ------------------------------------------------------------------ folding the text

# Latin-1 letters U+00C0..U+00FF and Latin Extended-A U+0100..U+017F, each by its base
# letter in upper case; "*" marks the few that need two letters (see _FOLD_PAIRS) and
# " " the two signs among them.
_FOLD_LATIN1 = b"AAAAAA*CEEEEIIIIDNOOOOO OUUUUY**AAAAAA*CEEEEIIIIDNOOOOO OUUUUY*Y"
_FOLD_EXTENDED_A = (
    b"AAAAAACCCCCCCCDDDDEEEEEEEEEEGGGGGGGGHHHHIIIIIIIIIIIIJJKKKLLLLLLLLLLNNNNNNNNNOOOOOO"
    b"OORRRRRRSSSSSSSSTTTTTTUUUUUUUUUUUUWWYYYZZZZZZS"
)
_FOLD_PAIRS = {0xC6: b"AE", 0xDE: b"TH", 0xDF: b"SS", 0xE6: b"AE", 0xFE: b"TH"}

# Typographic punctuation that stories use, as the ASCII the rules know.
_FOLD_PUNCT = {
    0x2018: b"'", 0x2019: b"'", 0x201B: b"'", 0x2032: b"'",
    0x201C: b'"', 0x201D: b'"', 0x201E: b'"', 0x00AB: b'"', 0x00BB: b'"',
    0x2013: b" - ", 0x2014: b" - ", 0x2026: b"...", 0x00A0: b" ",
}


def _fold_code_point(cp, out):
    if 0xC0 <= cp <= 0xFF:
        letter = _FOLD_LATIN1[cp - 0xC0]
        if letter == 0x2A:  # "*"
            out.extend(_FOLD_PAIRS[cp])
        else:
            out.append(letter)
    elif 0x100 <= cp <= 0x17F:
        out.append(_FOLD_EXTENDED_A[cp - 0x100])
    else:
        # Anything else outside ASCII (symbols, other scripts, emoji) is a word break.
        out.extend(_FOLD_PUNCT.get(cp, b" "))


def fold(text):
    """`text` (str or bytes) in the reciter's alphabet: upper case, codes 0..95.

    ASCII is mapped as the original did (it upper-cased a..z and folded the other codes
    96..127 onto 64..95). Other characters are decoded from UTF-8, or taken as Latin-1
    where the bytes are not UTF-8, and accented Latin letters lose their accents, so
    "naive cafe" and "naïve café" read alike; a character with no such reading becomes a
    space. "[", the original's own end mark, is read as a space too.
    """
    data = text.encode() if isinstance(text, str) else bytes(text)
    out = bytearray()
    n = len(data)
    i = 0
    while i < n:
        b = data[i]
        if b < 0x80:
            i += 1
            if 0x61 <= b <= 0x7A:
                b -= 0x20
            elif b >= 0x70:
                b &= 0x5F
            elif b >= 0x60:
                b &= 0x4F
            out.append(0x20 if b == _END_MARK else b)
            continue

        # A UTF-8 sequence, or a stray byte read as Latin-1.
        if b >= 0xF0:
            size, cp = 4, b & 0x07
        elif b >= 0xE0:
            size, cp = 3, b & 0x0F
        elif b >= 0xC0:
            size, cp = 2, b & 0x1F
        else:
            size = 0
        if size and i + size <= n:
            for k in range(1, size):
                c = data[i + k]
                if c & 0xC0 != 0x80:
                    size = 0
                    break
                cp = (cp << 6) | (c & 0x3F)
        else:
            size = 0
        if size:
            i += size
        else:
            cp = b
            i += 1
        _fold_code_point(cp, out)
    return bytes(out)


# ------------------------------------------------------------------ the rules

def _first_rules():
    """Offset in RULES of the first rule for each letter A..Z."""
    starts = [0] * 26
    seen = 0
    line = 0
    while line < len(RULES):
        letter = RULES[RULES.find(b"(", line) + 1] - 0x41
        if not seen & (1 << letter):
            seen |= 1 << letter
            starts[letter] = line
        line = RULES.find(b"\n", line) + 1
    return tuple(starts)


_FIRST_RULES = _first_rules()


def _left_fits(rules, line, paren, buf, first):
    """Whether the left context rules[line:paren] fits the text left of buf[first]."""
    k = paren - 1
    j = first
    while k >= line:
        ch = rules[k]
        if CHAR_FLAGS[ch] & _LETTER:
            if buf[j - 1] != ch:
                return False
            j -= 1
        elif ch == 0x3A:  # ":" any run of consonants
            while CHAR_FLAGS[buf[j - 1]] & _CONSONANT:
                j -= 1
        else:
            j -= 1
            c = buf[j]
            f = CHAR_FLAGS[c]
            if ch == 0x20:
                ok = not f & _LETTER
            elif ch == 0x23:  # "#"
                ok = f & _VOWEL
            elif ch == 0x2E:  # "."
                ok = f & _VOICED
            elif ch == 0x5E:  # "^"
                ok = f & _CONSONANT
            elif ch == 0x2B:  # "+"
                ok = c == 0x45 or c == 0x49 or c == 0x59
            elif ch == 0x26:  # "&": a sibilant, or CH / SH
                ok = f & _SIBILANT
                if not ok and c == 0x48:
                    j -= 1
                    ok = buf[j] == 0x43 or buf[j] == 0x53
            elif ch == 0x40:  # "@"
                # The original also meant to accept TH, CH and SH here, but its test
                # can never pass; only the alveolar class counts.
                ok = f & _ALVEOLAR
            else:
                raise ValueError("bad rule")
            if not ok:
                return False
        k -= 1
    return True


def _right_fits(rules, close, equals, buf, last):
    """Whether the right context rules[close + 1:equals] fits the text after buf[last]."""
    k = close + 1
    j = last
    while k < equals:
        ch = rules[k]
        c = buf[j + 1]
        f = CHAR_FLAGS[c]
        if CHAR_FLAGS[ch] & _LETTER:
            if c != ch:
                return False
            j += 1
        elif ch == 0x3A:  # ":"
            while CHAR_FLAGS[buf[j + 1]] & _CONSONANT:
                j += 1
        elif ch == 0x25:  # "%": -E, -ER, -ES, -ED, -ELY, -EFUL or -ING
            if c == 0x45:
                if CHAR_FLAGS[buf[j + 2]] & _LETTER:
                    a = buf[j + 2]
                    if a == 0x4C:
                        if buf[j + 3] != 0x59:
                            return False
                    elif a != 0x52 and a != 0x53 and a != 0x44:
                        if buf[j + 2:j + 5] != b"FUL":
                            return False
                # The original does not move past a suffix that starts with E.
            elif buf[j + 1:j + 4] == b"ING":
                # ...and moves one character too far past ING (no rule looks further).
                j += 4
            else:
                return False
        elif ch == 0x40:  # "@"
            if not f & _ALVEOLAR:
                if c != 0x48 and c != 0x54 and c != 0x43 and c != 0x53:
                    return False
                j += 1
            # An alveolar is accepted without being consumed, as in the original.
        else:
            j += 1
            if ch == 0x20:
                ok = not f & _LETTER
            elif ch == 0x23:
                ok = f & _VOWEL
            elif ch == 0x2E:
                ok = f & _VOICED
            elif ch == 0x5E:
                ok = f & _CONSONANT
            elif ch == 0x2B:
                ok = c == 0x45 or c == 0x49 or c == 0x59
            elif ch == 0x26:
                ok = f & _SIBILANT
                if not ok and c == 0x48:
                    ok = True
                    j += 1
            else:
                raise ValueError("bad rule")
            if not ok:
                return False
        k += 1
    return True


def _apply_rule(rules, line, buf, pos, out):
    """Apply the first rule from rules[line:] that fits at buf[pos]; return the next pos."""
    while line < len(rules):
        paren = rules.find(b"(", line)
        close = rules.find(b")", paren + 2)
        equals = rules.find(b"=", close + 1)
        end = rules.find(b"\n", equals)
        size = close - paren - 1
        k = 0
        while k < size and rules[paren + 1 + k] == buf[pos + k]:
            k += 1
        if (k == size
                and _left_fits(rules, line, paren, buf, pos)
                and _right_fits(rules, close, equals, buf, pos + size - 1)):
            out.extend(rules[equals + 1:end])
            return pos + size
        line = end + 1
    return pos + 1  # no rule: the character is skipped (every letter has a catch-all)


def reciter(text):
    """The phonemes the original writes for `text` (folded), or None if beyond its limits.

    Like the original's command line, it reads the text followed by one space, and the
    result keeps the leading and trailing spaces (pauses) the rules write.
    """
    n = len(text)
    if n > MAX_TEXT:
        return None

    # buf[1:] is what the original reads: a space, the text, the space its command line
    # adds and its end mark; buf[0] and the zeros after stand for what lies around.
    buf = bytearray(n + 12)
    buf[0] = _BEFORE_START
    buf[1] = 0x20
    buf[2:2 + n] = text
    buf[2 + n] = 0x20
    buf[3 + n] = _END_MARK
    for i in range(2, 2 + n):
        if not CHAR_FLAGS[buf[i]]:
            buf[i] = 0x20  # every character without a class reads as a space

    out = bytearray()
    pos = 1
    while True:
        c = buf[pos]
        if c == _END_MARK:
            break
        f = CHAR_FLAGS[c]
        if c == 0x2E and not CHAR_FLAGS[buf[pos + 1]] & _DIGIT:
            out.append(0x2E)  # a full stop not followed by a digit is a phoneme
            pos += 1
        elif f & _PUNCT:
            pos = _apply_rule(RULES_PUNCT, 0, buf, pos, out)
        elif f & _LETTER:
            pos = _apply_rule(RULES, _FIRST_RULES[c - 0x41], buf, pos, out)
        else:
            if len(out) > _BREAK_LIMIT:
                # The original stops here; that loses nothing if only spaces are left.
                for i in range(pos + 1, 3 + n):
                    if buf[i] != 0x20:
                        return None
                break
            out.append(0x20)
            pos += 1
        if len(out) > MAX_PHONEMES:
            return None
    return bytes(out)
