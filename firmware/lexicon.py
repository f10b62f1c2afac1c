"""The telling's pronunciation lexicon: words SAM's reciter reads wrongly, respelled.

    import lexicon
    lexicon.DEFAULT           # the text below; narration.Lexicon reads it

One entry a line: the word, then the English spelling that makes the reciter say it
right (check one with `micro-llm phonemes`). Words match whole and in any case, and a
possessive 's stays on ("Lily's" becomes "Lilly's"). An entry whose word ends in "." is
an abbreviation: its period does not end a sentence. "#" starts a comment.

A board adds entries, or changes these, in /lexicon.txt, written the same way.
"""

DEFAULT = """
# names the reciter gets wrong
Lily        Lilly
Zoe         Zoey
Mia         Mee uh
Sally       Sal lee
Fluffy      Fluffee

# abbreviations: the reciter spells some out, and their periods are not sentence ends
OK          oh kay
okay        oh kay
TV          tee vee
Mr.         Mister
Mrs.        Missiz
Ms.         Miz
Dr.         Doctor
St.         Saint
Mt.         mount
Jr.         junior
vs.         versus
etc.        et settera

# words of the stories that the rules read wrongly
wanted      wantid
excited     ek sighted
invited     in vighted
inside      in side
outside     out side
backyard    back yard
live        liv
lived       livd
lives       livz
heavy       hevvy
breath      breth
heard       herd
heart       hart
search      serch
bear        bair
pear        pair
listened    lissend
touch       tutch
juice       jooce
lost        lawst
climb       klime
climbed     klimed
window      win doe
shoes       shooz
lose        looz
nothing     nuthing
sugar       shugger
island      eye land
loudly      loud lee
finally     fy nuh lee
chocolate   choklit
color       kuller
colors      kullerz
colorful    kullerful
orange      or inj
brown       broun
clown       kloun
frown       froun
town        toun
crown       kroun
cow         kou
wow         wou
flower      flouer
flowers     flouerz
tower       touer
shower      shouer
tiger       ty gur
giant       jy ant
giraffe     juh raff
ocean       oh shun
police      puh leess
robot       ro bot
creature    kreecher
frightened  frytend
spaceship   space ship
fireman     fire man
dinosaur    dy no sore
wizard      wizzerd
grey        gray
"""
