"""Story text made ready for SAM's voice, sentence by sentence, as the model writes it.

    import narration
    lexicon = narration.load_lexicon()          # lexicon.DEFAULT and /lexicon.txt
    narration.prepare('"OK," said Lily.', lexicon)           # 'oh kay, said Lilly.'
    cutter = narration.Sentences(lexicon)
    cutter.feed(b'Mr. Brown smiled. He')                     # text as it is written
    cutter.next()             # (b'Mr. Brown smiled.', False): a sentence, no new paragraph
    narration.breaths("a long sentence, with clauses, ...")  # pieces of one breath each

SAM's reciter reads a story badly: it says "quote" around every line of dialogue, reads
"Lily" as "lie-lee", spells out "OK" and reads numbers digit by digit. prepare() drops the
quotation marks, respells words from the lexicon and writes numbers in words; the
sentence cutter knows the lexicon's abbreviations, so "Mr." does not end a sentence.
"""

from micropython import const

import lexicon as _default

USER_LEXICON = "/lexicon.txt"
_CAPACITY = const(512)    # bytes of story text held while a sentence is being written
_FORCE_CUT = const(400)   # a "sentence" this long is cut at a space without waiting more
BREATH = const(100)       # characters SAM says in one breath, at most

_QUOTES = "\"\u201c\u201d\u201e\u00ab\u00bb"
_SINGLE_QUOTES = "'\u2018\u2019"
_CLAUSE_MARKS = ",;:"
_CONJUNCTIONS = (" and ", " but ", " so ", " then ", " because ", " when ", " while ")


# ---------------------------------------------------------------- the lexicon

class Lexicon:
    """Words and the spellings SAM should read instead; keys in lower case."""

    def __init__(self, text=None):
        self.words = {}
        if text:
            self.add(text)

    def add(self, text, name="the lexicon"):
        """Add the entries of `text` (see lexicon.py for the format)."""
        number = 0
        for line in text.split("\n"):
            number += 1
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split(None, 1)
            if len(parts) != 2:
                raise ValueError("%s, line %d: a word, then how to say it: %r"
                                 % (name, number, line))
            self.words[parts[0].lower()] = " ".join(parts[1].split())

    def get(self, word):
        return self.words.get(word.lower())

    # Limitation: an abbreviation's period never ends a sentence, so one that closes a
    # sentence ("... pies etc. The end.") runs into the next.
    def is_abbreviation(self, word):
        """True for "Mr" when the lexicon has "Mr." (its period is not a sentence end)."""
        return (word.lower() + ".") in self.words


def load_lexicon(path=USER_LEXICON):
    """The default lexicon with the board's own entries (from `path`, if it exists)."""
    lex = Lexicon(_default.DEFAULT)
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return lex
    lex.add(text, path)
    return lex


# ---------------------------------------------------------------- one sentence

def _letter(c):
    return c.isalpha() or c.isdigit() or c > "\x7f"


def prepare(text, lex):
    """`text` (one sentence or more) as SAM should read it: quotation marks dropped,
    lexicon words respelled, numbers in words, white space made single spaces."""
    out = []
    n = len(text)
    i = 0
    while i < n:
        c = text[i]
        if _letter(c):
            j = i + 1
            while j < n and (_letter(text[j]) or (text[j] in _SINGLE_QUOTES and j + 1 < n
                                                  and _letter(text[j + 1]))):
                j += 1
            word = text[i:j].replace("\u2019", "'").replace("\u2018", "'")
            if j < n and text[j] == "." and lex.is_abbreviation(word):
                out.append(lex.get(word + "."))
                j += 1
            else:
                out.append(_respell(word, lex))
            i = j
            continue
        if c in _QUOTES or c in _SINGLE_QUOTES:
            # A quotation mark (an apostrophe inside a word went with the word): dropped,
            # and where it stood between two words, they stay apart.
            if out and out[-1] != " " and i + 1 < n and _letter(text[i + 1]):
                out.append(" ")
        elif c in " \t\r\n":
            if out and out[-1] != " ":
                out.append(" ")
        else:
            out.append(c)
        i += 1
    return "".join(out).strip()


def _respell(word, lex):
    said = lex.get(word)
    if said is not None:
        return said
    if word.isdigit():
        return number_words(int(word)) if len(word) <= 6 else word
    if len(word) > 2 and word[-2:].lower() == "'s":
        said = lex.get(word[:-2])
        if said is not None:
            return said + "'s"
    return word


_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
         "fourteen fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n):
    """0 <= n < 1,000,000 in words: 342 -> "three hundred forty two"."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_words(rest))
    rest = n % 1000
    return number_words(n // 1000) + " thousand" + ("" if rest == 0 else
                                                    " " + number_words(rest))


def breaths(text, limit=BREATH):
    """A prepared sentence cut into pieces SAM says in one breath each: at the last clause
    mark, else before a conjunction, else at a space, that keeps a piece within `limit`."""
    pieces = []
    while len(text) > limit:
        cut = _breath_cut(text, limit)
        pieces.append(text[:cut].strip())
        text = text[cut:].strip()
    if text:
        pieces.append(text)
    return pieces


def _breath_cut(text, limit):
    for i in range(limit - 1, 0, -1):
        if text[i] in _CLAUSE_MARKS and text[i + 1] == " ":
            return i + 1
    best = -1
    for word in _CONJUNCTIONS:
        at = text.rfind(word, 0, limit)
        if at > best:
            best = at
    if best > 0:
        return best
    at = text.rfind(" ", 0, limit + 1)
    return at if at > 0 else limit


# ---------------------------------------------------------------- streamed text

def _space(b):
    return b == 0x20 or b == 0x0A or b == 0x0D or b == 0x09


def _letter_byte(b):
    return 0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A


class Sentences:
    """Cuts story text into sentences as it streams in, each as soon as it is complete.

    A sentence ends at ".", "!" or "?" (with any closing quotation marks) followed by white
    space, unless the period belongs to a lexicon abbreviation; a line break ends one too,
    and starts a paragraph. feed() copies into a buffer allocated once, and looking for
    the end allocates nothing until one is found.
    """

    def __init__(self, lex, capacity=_CAPACITY):
        self.lexicon = lex
        self.buf = bytearray(capacity)
        self.n = 0
        self.scan = 0  # where to look on: text before it holds no sentence end

    def feed(self, data):
        k = len(data)
        if self.n + k > len(self.buf):
            raise ValueError("a sentence longer than %d bytes" % len(self.buf))
        buf = self.buf
        n = self.n
        for i in range(k):
            buf[n + i] = data[i]
        self.n = n + k

    def next(self):
        """(sentence bytes, ends a paragraph) for the next complete sentence, or None."""
        buf = self.buf
        n = self.n
        i = self.scan
        while i < n:
            c = buf[i]
            if c == 0x0A:
                return self._cut(i, i + 1, True)
            if c == 0x2E or c == 0x21 or c == 0x3F:  # . ! ?
                j = i + 1
                while j < n:
                    if buf[j] == 0x22 or buf[j] == 0x27 or buf[j] == 0x29:  # " ' )
                        j += 1
                    elif (buf[j] == 0xE2 and j + 2 < n and buf[j + 1] == 0x80
                          and (buf[j + 2] == 0x9D or buf[j + 2] == 0x99)):  # closing ” ’
                        j += 3
                    else:
                        break
                if j >= n:
                    self.scan = i  # what follows decides: look again when it comes
                    return None
                if _space(buf[j]) and not (c == 0x2E and self._abbreviation(i)):
                    return self._cut(j, j + 1, buf[j] == 0x0A)
            i += 1
        self.scan = n
        if n >= _FORCE_CUT:
            at = n - 1
            while at > 0 and buf[at] != 0x20:
                at -= 1
            return self._cut(at if at > 0 else n, at + 1 if at > 0 else n, False)
        return None

    def rest(self):
        """Whatever text is left (the end of the story): (bytes, True), or None."""
        if self.n == 0:
            return None
        return self._cut(self.n, self.n, True)

    def _abbreviation(self, dot):
        buf = self.buf
        start = dot
        while start > 0 and _letter_byte(buf[start - 1]):
            start -= 1
        if start == dot:
            return False
        return self.lexicon.is_abbreviation(bytes(buf[start:dot]).decode())

    def _cut(self, end, resume, paragraph):
        buf = self.buf
        text = bytes(buf[:end])
        left = self.n - resume
        buf[:left] = buf[resume:self.n]
        self.n = left
        self.scan = 0
        return text, paragraph
