"""The telling's text preparation (firmware/narration.py, lexicon.py) on the golden stories.

SAM's reciter reads dialogue as "quote ... unquote", "Lily" as "lie-lee" and "OK" as
"ock": the storyteller prepares each sentence before the voice gets it. All of it runs in
MicroPython, as on the board.
"""

from __future__ import annotations

import json

import pytest

from conftest import run_firmware

# Cuts text streamed in pieces of `chunk` bytes (as the model writes it, a token at a
# time) into sentences, prepares each and cuts it into breaths.
_TELL_TEXT = """
import sys, json, narration
texts, chunk, lexicon = json.loads(sys.argv[1])
lex = narration.load_lexicon(lexicon or "/no/such/lexicon.txt")
out = []
for text in texts:
    cut = narration.Sentences(lex)
    story = []
    data = text.encode() + b"\\n"
    for i in range(0, len(data), chunk):
        cut.feed(data[i:i + chunk])
        while True:
            s = cut.next()
            if s is None:
                break
            story.append([narration.breaths(narration.prepare(s[0].decode(), lex)), s[1]])
    out.append(story)
print(json.dumps(out))
"""


def told(texts: list[str], chunk: int = 3, lexicon: str = "") -> list[list]:
    """For each text: [[pieces of one breath each], ends a paragraph] per sentence."""
    return json.loads(run_firmware(_TELL_TEXT, json.dumps([texts, chunk, lexicon])))


def pieces(texts: list[str], **kw) -> list[list[str]]:
    return [[p for sentence, _ in story for p in sentence] for story in told(texts, **kw)]


def golden(cases: list[dict], case_id: str) -> str:
    return next(c["expected_text"] for c in cases if c["id"] == case_id)


def test_dialogue_is_told_without_quotation_marks_in_sentences_as_written(golden_llm_cases):
    text = golden(golden_llm_cases, "lily_and_tom_n256_greedy")
    assert pieces([text])[0][:13] == [
        "Lilly and Tom were playing in the park.",
        "They liked to play with their toys and run around the park.",
        "They saw a big box with a big box.",
        "They wantid to play with the box.",
        "Look, Mom!",
        "Lilly said.",
        "Let's go to the park.",
        "Let's go to the park, Tom said.",  # a comma inside the quote ends no sentence
        "Let's go to the park.",
        "oh kay, Lilly, Lilly said.",
        "It's a small box.",
        "We can find it.",
        "oh kay, Tom said.",
    ]


def test_a_line_break_ends_a_paragraph(golden_llm_cases):
    text = golden(golden_llm_cases, "lily_and_tom_n256_greedy")
    paragraph_ends = [sentence[0][-1] for sentence in told([text])[0] if sentence[1]]
    assert paragraph_ends == ["They wantid to play with the box.", "Let's go to the park.",
                              "Let's go to the park.", "We can find it.", "We can find it.",
                              "They played together every day."]


def test_names_keep_their_possessive_and_contractions_stay_whole(golden_llm_cases):
    text = golden(golden_llm_cases, "once_upon_a_time_n256_greedy")
    said = pieces([text])[0]
    assert said[4] == "Lilly's mom said, Lilly, let's go to the park."
    assert said[5] == "Lilly was sad and didn't know what to do."
    assert said[8] == "She said, I'm sorry, Lilly."


def test_abbreviations_are_said_in_full_and_their_periods_end_no_sentence():
    assert pieces(["Mr. Green and Dr. Kim watched TV. It was OK, said Mrs. Lee.",
                   "They met at St. Mary's at 3 on Mt. Fuji with cakes, pies etc. and tea."]) == [
        ["Mister Green and Doctor Kim watched tee vee.", "It was oh kay, said Missiz Lee."],
        ["They met at Saint Mary's at three on mount Fuji with cakes, pies et settera and "
         "tea."]]


def test_every_golden_story_reaches_sam_without_quotes_or_lie_lee(golden_llm_cases):
    texts = [c["expected_text"] for c in golden_llm_cases]
    phonemes_of = """
import sys, json, sam
print(json.dumps([sam.phonemes(t) for t in json.loads(sys.argv[1])]))
"""
    everything = [p for story in pieces(texts) for p in story]
    assert len(everything) > 100
    assert not any(mark in p for p in everything for mark in "\"\u201c\u201d")
    said = json.loads(run_firmware(phonemes_of, json.dumps(everything)))
    assert not any("KWOW" in s or "LAYLIY" in s for s in said)
    # and without the preparation the reciter does say both
    raw = json.loads(run_firmware(phonemes_of, json.dumps(['"Look, Mom!" Lily said.'])))
    assert "KWOW" in raw[0] and "LAYLIY" in raw[0]


@pytest.mark.parametrize("chunk", [1, 2, 7, 16])
def test_sentences_come_out_the_same_however_the_text_is_streamed(golden_llm_cases, chunk):
    texts = [c["expected_text"] for c in golden_llm_cases[:8]]
    assert told(texts, chunk=chunk) == told(texts, chunk=3)


def test_numbers_are_said_in_words():
    assert pieces(["She had 3 cats and 12 dogs.", "It cost 1999 coins and 250000 more.",
                   "Room 101 is at 40 Elm."]) == [
        ["She had three cats and twelve dogs."],
        ["It cost one thousand nine hundred ninety nine coins and two hundred fifty "
         "thousand more."],
        ["Room one hundred one is at forty Elm."]]


def test_a_long_sentence_is_cut_where_a_reader_takes_a_breath():
    sentence = ("Lily and her mom went to the big green park by the river to play with the "
                "ball, and they ran and ran until the sun went down behind the tall old trees "
                "and the birds began to sing their evening song.")
    said = pieces([sentence])[0]
    assert said == [
        "Lilly and her mom went to the big green park by the river to play with the ball,",
        "and they ran and ran until the sun went down behind the tall old trees",
        "and the birds began to sing their evening song."]
    assert all(len(p) <= 100 for p in said)


def test_a_boards_own_lexicon_adds_words_and_overrides_the_default(tmp_path):
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text("# the board's names\nLily   Lilly Anne\nBingo  Bin go\n\n"
                       "Dr.  the doctor\n")
    assert pieces(["Lily met Bingo and Dr. Kim."], lexicon=str(lexicon)) == [
        ["Lilly Anne met Bin go and the doctor Kim."]]


def test_a_bad_lexicon_line_is_named(tmp_path):
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text("Lily Lilly\nBingo\n")
    code = "import narration, sys\ntry:\n narration.load_lexicon(sys.argv[1])\n" \
           "except ValueError as e:\n print(e)\n"
    assert run_firmware(code, str(lexicon)) == (
        f"{lexicon}, line 2: a word, then how to say it: 'Bingo'\n")
