"""SAM's renderer: a phoneme list to 8-bit unsigned PCM at 22050 Hz, in bounded blocks.

    from sam_render import Renderer
    renderer = Renderer(speed=72, pitch=64, mouth=128, throat=128, sing=False)
    for block in renderer.render(phoneme_list):   # a prepared sam_phonemes.PhonemeList
        out.write(block)                          # memoryview, valid until the next block
    for block in renderer.flush():
        out.write(block)

Each chunk of the list (up to a BREAK) becomes frames of about 10 ms: the phoneme's
formants, amplitudes and pitch, joined to the next phoneme by linear transitions.
Statements fall and questions rise over the 30 frames before their mark. A kernel then
synthesises the frames as the original did on the C64: three formant oscillators (two
sines and a square) restarted at every glottal pulse, and noise patterns for the
consonants, at 4-bit resolution. A Renderer keeps its state from one list to the next,
so pieces of a long text join up exactly as one utterance of the original would.

Memory: 2 KB of frames, a 4.5 KB output buffer and the chunk's three 256-byte lists,
whatever the length of the text.
"""

import micropython
from array import array
from micropython import const

from sam_phonemes import BREAK, END
from sam_tables import (
    AMPL1, AMPL2, AMPL3, AMPLITUDE_DB, BLEND_IN, BLEND_OUT, BLEND_RANK, FREQ1, FREQ2, FREQ3,
    MOUTH_FORMANTS, MULT, SAMPLED, SAMPLES, SINE, STRESS_PITCH, THROAT_FORMANTS, TIMING,
)

SAMPLE_RATE = const(22050)
BLOCK = const(2048)      # bytes in every block but the last
_HEADROOM = const(2560)  # the most one kernel step writes (an unvoiced sample: 2393)
_SILENCE = const(0x80)   # samples the original never writes

# The frame table: seven parameters of 256 frames each, then the sampled-consonant flags.
# The transitions name a parameter by its number 0..6.
_PITCH = const(0)
_F1 = const(256)
_F2 = const(512)
_F3 = const(768)
_A1 = const(1024)
_A2 = const(1280)
_A3 = const(1536)
_SAMPLED = const(1792)
_FRAMES = const(2048)

_FIRST_FRAME_STEPS = const(72)  # the original starts each chunk's first frame at 72
_PERIOD = const(1)
_QUESTION = const(2)
_FALLING = const(1)      # statements: each frame's glottal period one step longer
_RISING = const(255)     # questions: one step shorter

# Kernel state (an array of 32-bit ints shared with _render_frames)
_Y = const(0)            # frame
_LEFT = const(1)         # frames left in the chunk
_STEPS = const(2)        # glottal steps left in the frame
_PHASE1 = const(3)
_PHASE2 = const(4)
_PHASE3 = const(5)
_GLOTTAL = const(6)      # steps left in the glottal pulse
_OPEN = const(7)         # steps left in its open (voiced) part
_VOICED_OFF = const(8)   # position in the voiced noise pattern
_KIND = const(9)         # kind of the last output step (TIMING)
_REM = const(10)         # output position, 1/50 sample past the last sample written
_LEVEL = const(11)       # the value the last step output
_FILL = const(12)        # bytes in the output buffer
_LIMIT = const(13)       # stop before a step when the buffer holds this many
_SPEED = const(14)
_STATE = const(15)

_NOISE_LEVELS = const(25)  # TIMING[25 + page]: the "off" level of each noise pattern


@micropython.viper
def _render_frames(frames: ptr8, st: ptr32, out: ptr8, sine: ptr8, mult: ptr8,
                   samples: ptr8, timing: ptr8) -> int:
    """Synthesise frames into out; 1 when the chunk is done, 0 when the buffer is full.

    frames: the frame table above. st: the state above (all values 0..255 except the
    buffer counters, so 32-bit ints never overflow). out: bytes from st[_FILL] on.
    Every output step moves the output position by TIMING[5 * last kind + kind] 1/50
    samples and holds the step's 4-bit value (times 16) until the next step: this is the
    original's C64 timing, and its way of writing each value over the next 5 samples.
    """
    y = st[_Y]
    left = st[_LEFT]
    steps = st[_STEPS]
    phase1 = st[_PHASE1]
    phase2 = st[_PHASE2]
    phase3 = st[_PHASE3]
    glottal = st[_GLOTTAL]
    open_steps = st[_OPEN]
    voiced_off = st[_VOICED_OFF]
    kind = st[_KIND]
    rem = st[_REM]
    level = st[_LEVEL]
    fill = st[_FILL]
    limit = st[_LIMIT]
    speed = st[_SPEED]
    done = 0

    while left != 0:
        if fill >= limit:
            break
        flags = frames[_SAMPLED + y]
        if flags & 248:
            # Unvoiced consonant: its noise pattern from (flags ^ 255) to the page end.
            page = (flags & 7) - 1
            base = page << 8
            noise = timing[_NOISE_LEVELS + page]
            off = (flags & 248) ^ 255
            while True:
                sample = samples[base + off]
                bit = 8
                while bit != 0:
                    if sample & 128:
                        new_kind = 2
                        value = 5
                    else:
                        new_kind = 1
                        value = noise
                    rem += timing[kind * 5 + new_kind]
                    kind = new_kind
                    while rem >= 50:
                        out[fill] = level
                        fill += 1
                        rem -= 50
                    level = (value & 15) << 4
                    sample = sample << 1
                    bit -= 1
                off = (off + 1) & 255
                if off == 0:
                    break
            y = (y + 2) & 255
            left = (left - 2) & 255
            steps = speed
        else:
            # Voiced: the three formants at this frame's amplitudes, summed as the C64 did.
            value = (mult[sine[phase1] | frames[_A1 + y]]
                     + mult[sine[phase2] | frames[_A2 + y]])
            if value > 255:
                value += 1
            if phase3 < 128:  # F3 is a square wave: -7 then +7 in the high nibble
                value += mult[0x90 | frames[_A3 + y]]
            else:
                value += mult[0x70 | frames[_A3 + y]]
            value = ((value + 136) >> 4) & 15
            rem += timing[kind * 5]
            kind = 0
            while rem >= 50:
                out[fill] = level
                fill += 1
                rem -= 50
            level = value << 4

            steps = (steps - 1) & 255
            if steps == 0:
                y = (y + 1) & 255
                left = (left - 1) & 255
                if left == 0:
                    done = 1
                    break
                steps = speed
            glottal = (glottal - 1) & 255
            if glottal != 0:
                open_steps = (open_steps - 1) & 255
                if open_steps != 0 or flags == 0:
                    phase1 = (phase1 + frames[_F1 + y]) & 255
                    phase2 = (phase2 + frames[_F2 + y]) & 255
                    phase3 = (phase3 + frames[_F3 + y]) & 255
                    continue
                # Voiced consonant: a stretch of its pattern in the closed part of the
                # pulse, longer for lower voices.
                base = ((flags & 7) - 1) << 8
                n = (frames[_PITCH + y] >> 4) + 1
                while n != 0:
                    sample = samples[base + voiced_off]
                    bit = 8
                    while bit != 0:
                        if sample & 128:
                            new_kind = 3
                            value = 26
                        else:
                            new_kind = 4
                            value = 6
                        rem += timing[kind * 5 + new_kind]
                        kind = new_kind
                        while rem >= 50:
                            out[fill] = level
                            fill += 1
                            rem -= 50
                        level = (value & 15) << 4
                        sample = sample << 1
                        bit -= 1
                    voiced_off = (voiced_off + 1) & 255
                    n -= 1

        # A new glottal pulse: its period is the frame's pitch; formants restart.
        glottal = frames[_PITCH + y]
        open_steps = (glottal - (glottal >> 2)) & 255
        phase1 = 0
        phase2 = 0
        phase3 = 0

    if left == 0:
        done = 1
    st[_Y] = y
    st[_LEFT] = left
    st[_STEPS] = steps
    st[_PHASE1] = phase1
    st[_PHASE2] = phase2
    st[_PHASE3] = phase3
    st[_GLOTTAL] = glottal
    st[_OPEN] = open_steps
    st[_VOICED_OFF] = voiced_off
    st[_KIND] = kind
    st[_REM] = rem
    st[_LEVEL] = level
    st[_FILL] = fill
    return done


def _scale(setting, formant):
    # The voice's mouth or throat setting scales a formant by setting/256, rounded down
    # to an even number, as the original did.
    return (((setting * formant) >> 8) << 1) & 0xFF


def _signed(v):
    v &= 0xFF
    return v - 256 if v > 127 else v


class Renderer:
    """Renders phoneme lists with one voice, keeping the output continuous between them."""

    def __init__(self, speed=72, pitch=64, mouth=128, throat=128, sing=False):
        for name, value, low in (("speed", speed, 1), ("pitch", pitch, 0),
                                 ("mouth", mouth, 0), ("throat", throat, 0)):
            if not isinstance(value, int) or not low <= value <= 255:
                raise ValueError("%s must be %d..255, not %r" % (name, low, value))
        self.pitch = pitch
        self.sing = sing

        # F1 and F2 of the voiced phonemes follow the mouth and throat settings.
        self.freq1 = bytearray(FREQ1)
        self.freq2 = bytearray(FREQ2)
        k = 0
        for p in tuple(range(5, 30)) + tuple(range(48, 54)):
            self.freq1[p] = _scale(mouth, MOUTH_FORMANTS[k])
            self.freq2[p] = _scale(throat, THROAT_FORMANTS[k])
            k += 1

        self.frames = bytearray(_FRAMES)
        # Limitation: the original kept a chunk in lists of 60 phonemes and wrote past
        # them when a chunk had more (which its breaths make rare); these hold 256, so
        # such a chunk sounds as intended rather than as the overwritten memory did.
        self.chunk_index = bytearray(256)
        self.chunk_length = bytearray(256)
        self.chunk_stress = bytearray(256)
        self.out = bytearray(BLOCK + _HEADROOM)
        self.state = array("i", [0] * _STATE)
        self.state[_LEVEL] = _SILENCE
        self.state[_LIMIT] = BLOCK
        self.state[_SPEED] = speed
        self.samples = 0  # samples handed out so far

    # ------------------------------------------------------------- the phoneme list

    def render(self, phonemes):
        """Blocks of PCM for a prepared PhonemeList, chunk by chunk (BLOCK bytes each)."""
        index = phonemes.index
        length = phonemes.length
        stress = phonemes.stress
        ci = self.chunk_index
        cl = self.chunk_length
        cs = self.chunk_stress
        src = 0
        dst = 0
        while True:
            p = index[src]
            if p == END or p == BREAK:
                ci[dst] = END
                if ci[0] != END:
                    for block in self._render_chunk():
                        yield block
                if p == END:
                    return
                dst = 0
            elif p:
                ci[dst] = p
                cl[dst] = length[src]
                cs[dst] = stress[src]
                dst += 1
            src += 1

    def flush(self):
        """The last, partly filled block, if any."""
        fill = self.state[_FILL]
        if fill:
            self.state[_FILL] = 0
            self.samples += fill
            yield memoryview(self.out)[:fill]

    def _render_chunk(self):
        self._create_frames()
        frames = self._create_transitions()
        if not self.sing:
            self._pitch_contour()
        self._rescale_amplitudes()
        for block in self._synthesise(frames):
            yield block

    # ------------------------------------------------------------- frames

    def _create_frames(self):
        """Copy each phoneme's parameters into as many frames as its length."""
        ci = self.chunk_index
        frames = self.frames
        x = 0
        i = 0
        while True:
            p = ci[i]
            if p == END:
                return
            if p == _PERIOD:
                self._add_inflection(_FALLING, x)
            elif p == _QUESTION:
                self._add_inflection(_RISING, x)
            s = self.chunk_stress[i] + 1
            pitch = (self.pitch + (STRESS_PITCH[s] if s < len(STRESS_PITCH) else 0)) & 0xFF
            f1 = self.freq1[p]
            f2 = self.freq2[p]
            f3 = FREQ3[p]
            a1 = AMPL1[p]
            a2 = AMPL2[p]
            a3 = AMPL3[p]
            sampled = SAMPLED[p]
            # A length of 0 made the original write all 256 frames.
            n = self.chunk_length[i] or 256
            while n:
                frames[_PITCH + x] = pitch
                frames[_F1 + x] = f1
                frames[_F2 + x] = f2
                frames[_F3 + x] = f3
                frames[_A1 + x] = a1
                frames[_A2 + x] = a2
                frames[_A3 + x] = a3
                frames[_SAMPLED + x] = sampled
                x = (x + 1) & 0xFF
                n -= 1
            i += 1

    def _add_inflection(self, step, end):
        """Pitch falls (or rises) step by step over the 30 frames before `end`."""
        frames = self.frames
        pos = end - 30 if end >= 30 else 0
        # Frames at period 127 are skipped at the start (the original's fix for a "."
        # that followed such a frame); bounded, as the original was not.
        for _ in range(256):
            a = frames[_PITCH + pos]
            if a != 127:
                break
            pos = (pos + 1) & 0xFF
        while pos != end:
            a = (a + step) & 0xFF
            frames[_PITCH + pos] = a
            pos = (pos + 1) & 0xFF
            while pos != end and frames[_PITCH + pos] == 255:
                pos = (pos + 1) & 0xFF

    def _create_transitions(self):
        """Interpolate the parameters across phoneme boundaries; return the chunk's frames.

        The phoneme with the lower BLEND_RANK decides how many frames before and after a
        boundary are blended. Pitch is blended from the middle of one phoneme to the
        middle of the next instead.
        """
        ci = self.chunk_index
        cl = self.chunk_length
        frames = self.frames
        position = 0
        pos = 0
        while True:
            phoneme = ci[pos]
            following = ci[pos + 1]
            if following == END:
                break
            rank = BLEND_RANK[phoneme]
            following_rank = BLEND_RANK[following]
            if rank == following_rank:
                before = BLEND_OUT[phoneme]
                after = BLEND_OUT[following]
            elif rank < following_rank:
                before = BLEND_IN[following]
                after = BLEND_OUT[following]
            else:
                before = BLEND_OUT[phoneme]
                after = BLEND_IN[phoneme]

            position = (position + cl[pos]) & 0xFF
            start = (position - before) & 0xFF
            width = (before + after) & 0xFF
            if 2 <= width <= 129:
                half = cl[pos] >> 1
                following_half = cl[pos + 1] >> 1
                change = (frames[_PITCH + ((position + following_half) & 0xFF)]
                          - frames[_PITCH + ((position - half) & 0xFF)])
                self._interpolate((half + following_half) & 0xFF, _PITCH, start, change)
                stop = (position + after) & 0xFF
                for table in (_F1, _F2, _F3, _A1, _A2, _A3):
                    change = frames[table + stop] - frames[table + start]
                    self._interpolate(width, table, start, change)
            pos += 1
        return (position + cl[pos]) & 0xFF

    def _interpolate(self, width, table, frame, change):
        """Step frames frame+1 .. frame+width-1 of `table` by change/width (8-bit maths,
        errors accumulated as the original did, and a value of 0 never rounded up)."""
        if width == 0:
            return  # the original divided by zero here
        change = _signed(change)
        frames = self.frames
        negative = change < 0
        size = -change if negative else change
        remainder = size % width
        step = -(size // width) if negative else size // width
        value = (frames[table + frame] + step) & 0xFF
        error = 0
        for _ in range(width - 1):
            error = (error + remainder) & 0xFF
            if error >= width:
                error -= width
                if negative:
                    value = (value - 1) & 0xFF
                elif value:
                    value = (value + 1) & 0xFF
            frame = (frame + 1) & 0xFF
            frames[table + frame] = value
            value = (value + step) & 0xFF

    def _pitch_contour(self):
        # Half of F1 taken off the glottal period: open vowels sound a little higher.
        # All 256 frames, as in the original: frames past the chunk keep earlier values.
        frames = self.frames
        for i in range(256):
            frames[_PITCH + i] = (frames[_PITCH + i] - (frames[_F1 + i] >> 1)) & 0xFF

    def _rescale_amplitudes(self):
        frames = self.frames
        for i in range(_A1, _A1 + 3 * 256):
            a = frames[i]
            frames[i] = AMPLITUDE_DB[a] if a < len(AMPLITUDE_DB) else 0

    # ------------------------------------------------------------- synthesis

    def _synthesise(self, frame_count):
        """Run the kernel over the chunk's frames, handing out each full block."""
        if not frame_count:
            return
        frames = self.frames
        st = self.state
        glottal = frames[_PITCH]
        st[_Y] = 0
        st[_LEFT] = frame_count
        st[_STEPS] = _FIRST_FRAME_STEPS
        st[_PHASE1] = st[_PHASE2] = st[_PHASE3] = 0
        st[_GLOTTAL] = glottal
        st[_OPEN] = (glottal - (glottal >> 2)) & 0xFF
        st[_VOICED_OFF] = 0
        out = self.out
        while True:
            done = _render_frames(frames, st, out, SINE, MULT, SAMPLES, TIMING)
            fill = st[_FILL]
            if fill >= BLOCK:
                self.samples += BLOCK
                yield memoryview(out)[:BLOCK]
                rest = fill - BLOCK
                out[:rest] = out[BLOCK:fill]
                st[_FILL] = rest
            if done:
                return
