"""Sound out of an I2S DAC amplifier (MAX98357A): SAM's 8-bit PCM in, 16-bit frames out.

    import audio
    speaker = audio.Speaker({"id": 0, "bclk": 7, "lrclk": 8, "din": 9})  # board.json's i2s
    speaker.open()
    for block in sam.render("Hello, my name is Sam."):
        speaker.play(block)               # returns at once while a buffer is free
    speaker.drain()                       # everything queued has been heard
    speaker.close()                       # I2S released; open() again to play more

    audio.speaker_test()                  # a short tone, then "hello": check the wiring

Each unsigned 8-bit sample s becomes the signed 16-bit sample ((s - 128) << 8) scaled by
the volume (percent), so silence is 0. The I2S runs in STEREO with the sample in both
slots: on the ESP32-S3 a MONO stream takes both slots of a frame (upstream MicroPython
#11635) and would play two samples per frame, so STEREO is the layout in which the
amplifier, which plays (left + right) / 2, gets every sample exactly once.

Playback is non-blocking: play() converts a block into one of four frame buffers and
returns; the I2S callback (run by MicroPython's scheduler between bytecodes) hands the
next buffer to the DMA whenever one has gone out. The four hold 370 ms, more than the
longest stretch the storyteller spends away from them (starting a sentence in SAM, some
60 ms on the board), and the DMA's own 186 ms are more than the longest stretch the
scheduler cannot run (a viper kernel: a few ms on the board; bench/tell.py measures
them), so the callback finds the next buffer in time. When it finds none while more
sound is to come, the DMA plays on for what it holds; a buffer that comes later than
186 ms after that leaves a gap of silence: an underrun, counted in `underruns` by the
board's clock.
"""

import time

import micropython
from machine import I2S, Pin
from micropython import const

RATE = const(22050)
BLOCK = const(2048)               # samples per frame buffer: one SAM block
_FRAME = const(4)                 # bytes per frame: left and right, 16 bits each
SLOTS = const(4)                  # frame buffers: 4 x 93 ms
IBUF = const(2 * BLOCK * _FRAME)  # the DMA's own buffer: 186 ms (internal RAM on the board)
_IBUF_MS = const(2 * BLOCK * 1000 // RATE)  # how long the DMA plays on after a callback
_QUEUE = const(16)                # queued buffers: the slots plus stretches of silence
_LOST_MS = const(4 * _IBUF_MS)   # no buffer went out for this long: its callback was lost
_STALL_MS = const(3000)           # no buffer went out for this long: the I2S has stopped


@micropython.viper
def _to_frames(frames: ptr16, pcm: ptr8, n: int, gain: int):
    """frames[2i] = frames[2i+1] = (pcm[i] - 128) * gain, for n unsigned 8-bit samples.

    gain is the volume in 1/256 (256: full scale, the sample shifted left by 8); the
    16-bit stores keep the low half, the two's complement of the signed sample.
    """
    j = 0
    for i in range(n):
        v = (pcm[i] - 128) * gain
        frames[j] = v
        frames[j + 1] = v
        j += 2


class Speaker:
    """A queue of frame buffers played through I2S in the background."""

    def __init__(self, i2s, volume=100, rate=RATE):
        for signal in ("bclk", "lrclk", "din"):
            if not isinstance(i2s.get(signal), int):
                raise ValueError("the board profile's i2s has no %s pin" % signal)
        self.pins = i2s
        self.rate = rate
        self.volume = volume
        self.i2s = None

        # Frame buffers, reused for every block; a queue entry is a view of one of them
        # or of the silence buffer.
        self.slots = [bytearray(BLOCK * _FRAME) for _ in range(SLOTS)]
        self.zeros = memoryview(bytearray(BLOCK * _FRAME))
        self.queue = [None] * _QUEUE
        self.owns = bytearray(_QUEUE)  # 1 where the entry holds a slot
        self._reset()

    @property
    def volume(self):
        return self._volume

    @volume.setter
    def volume(self, percent):
        if not 0 <= percent <= 100:
            raise ValueError("volume is a percentage, 0..100, not %r" % percent)
        self._volume = percent
        self.gain = percent * 256 // 100

    def _reset(self):
        # The figures of what was played, kept after close() for the caller to read.
        self.underruns = 0
        self.samples = 0         # samples queued
        self.started_ms = None   # when the first buffer went to the I2S
        self._empty()

    def _empty(self):
        # Each counter has one writer, so the callback never races the code it interrupts:
        # `queued`, `taken` and `slot_next` belong to play(), `sent` and `freed` to the
        # callback.
        self.queued = 0          # entries queued, ever
        self.sent = 0            # entries the DMA has taken, ever
        self.taken = 0           # slots filled, ever
        self.freed = 0           # slots given back, ever
        self.slot_next = 0
        self.playing = False
        self.finishing = False
        self.starved_ms = -1     # when the callback last found nothing to write, if it did
        for i in range(_QUEUE):
            self.queue[i] = None

    # ------------------------------------------------------------ the peripheral

    def open(self):
        """Start the I2S peripheral (16-bit stereo frames, non-blocking writes)."""
        if self.i2s is not None:
            return
        self._reset()
        p = self.pins
        i2s = I2S(p.get("id", 0), sck=Pin(p["bclk"]), ws=Pin(p["lrclk"]), sd=Pin(p["din"]),
                  mode=I2S.TX, bits=16, format=I2S.STEREO, rate=self.rate, ibuf=IBUF)
        i2s.irq(self._sent)
        self.i2s = i2s

    def close(self):
        """Stop at once and release the peripheral: nothing more is heard, and what was
        queued is dropped. underruns and samples stay for the caller to read."""
        i2s = self.i2s
        self.i2s = None
        self.playing = False
        if i2s is not None:
            i2s.deinit()
        self._empty()

    # ------------------------------------------------------------ the queue

    def room(self):
        """True when play() can take a block without waiting."""
        return (self.taken - self.freed < SLOTS and self.queued - self.sent < _QUEUE)

    def play(self, pcm):
        """Queue a block of unsigned 8-bit samples (at most BLOCK), waiting for a free
        buffer if all are queued."""
        n = len(pcm)
        if n > BLOCK:
            raise ValueError("a block holds at most %d samples, not %d" % (BLOCK, n))
        if n == 0:
            return
        self.open()
        if not self.playing:
            self.finishing = False  # sound again after a finished stretch
        while not self.room():
            self.wait()
        slot = self.slot_next
        buf = self.slots[slot]
        _to_frames(buf, pcm, n, self.gain)
        self.slot_next = (slot + 1) % SLOTS
        self.taken += 1
        self._queue(memoryview(buf)[:n * _FRAME], 1)

    def silence(self, samples):
        """Queue `samples` samples of silence (no buffer needed: they share one)."""
        self.open()
        if samples > 0 and not self.playing:
            self.finishing = False
        self._silence(samples)

    def _silence(self, samples):
        while samples > 0:
            n = min(samples, BLOCK)
            while self.queued - self.sent >= _QUEUE:
                self.wait()
            self._queue(self.zeros[:n * _FRAME], 0)
            samples -= n

    def _queue(self, view, owns):
        i = self.queued % _QUEUE
        self.queue[i] = view
        self.owns[i] = owns
        self.queued += 1
        self.samples += len(view) // _FRAME
        # The callback may have run (and found the queue empty) just before the entry
        # was counted; then nothing is playing and this starts it.
        if not self.playing:
            self._start()

    def _start(self):
        # Only here while nothing is playing: no callback is due, so nothing races this.
        # A peripheral closed meanwhile (Ctrl-C) leaves nothing to start: open() again.
        if self.queued == self.sent or self.i2s is None:
            return
        self.playing = True
        now = time.ticks_ms()
        if self.started_ms is None:
            self.started_ms = now
        if self.starved_ms >= 0:
            # Starved, and the DMA's own buffer ran out before this: a gap was heard.
            # Limitation: timed by this clock, assuming the DMA held a full IBUF when the
            # callback found nothing: a late callback, or a clock that is not the DMA's
            # (the simulator at a speed factor other than 1), makes this count too few.
            if time.ticks_diff(now, self.starved_ms) > _IBUF_MS:
                self.underruns += 1
            self.starved_ms = -1
        self.i2s.write(self.queue[self.sent % _QUEUE])

    def _sent(self, i2s):
        """I2S callback: the entry being written has gone to the DMA; write the next."""
        if i2s is not self.i2s or not self.playing:
            return  # a callback from before close(): that peripheral is gone
        i = self.sent % _QUEUE
        if self.owns[i]:
            self.freed += 1
        self.queue[i] = None
        self.sent += 1
        if self.queued != self.sent:
            i2s.write(self.queue[self.sent % _QUEUE])
            return
        self.playing = False
        if not self.finishing:
            self.starved_ms = time.ticks_ms()

    def wait(self):
        """Wait until the next buffer has gone out (or nothing is playing)."""
        # Sleeping lets the scheduler run the callback; a queue that does not move for
        # seconds means the peripheral stopped, which must not hang the caller.
        sent = self.sent
        since = time.ticks_ms()
        restarted = False
        while self.sent == sent:
            if not self.playing:
                self._start()
                if not self.playing:
                    return
            time.sleep_ms(1)
            waited = time.ticks_diff(time.ticks_ms(), since)
            if waited > _LOST_MS and not restarted:
                # No buffer went out for longer than the DMA can play on its own: the
                # callback that writes the next one was lost (a Ctrl-C that lands inside
                # it is swallowed by the scheduler, and so is the rest of the callback).
                # Write it from here; at worst a block is heard twice.
                restarted = True
                self.playing = False
            elif waited > _STALL_MS:
                raise OSError("the I2S output stopped taking samples")

    # ------------------------------------------------------------ the end

    def finish(self):
        """Nothing more is coming: the queue running empty from now on is the end, not an
        underrun."""
        self.finishing = True

    def drain(self):
        """Wait until every queued sample has been played, then stay open."""
        self.finish()
        if self.i2s is None:
            return  # closed: nothing is queued any more
        # The DMA keeps up to IBUF of sound after the callback; silence as long as that
        # pushes it all out to the amplifier.
        self._silence(IBUF // _FRAME)
        while self.sent != self.queued:
            self.wait()
        self.samples -= IBUF // _FRAME


# ---------------------------------------------------------------- the wiring check

def _tone(hz, ms, level=0x30):
    """An unsigned 8-bit sine of `hz`, faded in and out over 10 ms so it does not click."""
    import math
    n = RATE * ms // 1000
    fade = RATE // 100
    out = bytearray(n)
    step = 2 * math.pi * hz / RATE
    for i in range(n):
        edge = min(i, n - 1 - i, fade)
        out[i] = 128 + int(level * math.sin(step * i) * edge / fade)
    return out


def speaker_test(i2s=None, volume=50, speaker=None):
    """Play a short tone and say "hello" through `speaker`, or one on the pins `i2s`
    (default: /board.json's)."""
    import sam
    if speaker is None:
        if i2s is None:
            import json
            with open("/board.json") as f:
                i2s = json.load(f)["i2s"]
        speaker = Speaker(i2s)
    speaker.volume = volume
    try:
        speaker.open()
        tone = memoryview(_tone(440, 400))
        for i in range(0, len(tone), BLOCK):
            speaker.play(tone[i:i + BLOCK])
        speaker.silence(RATE // 4)
        for block in sam.render("hello"):
            speaker.play(block)
        speaker.drain()
    finally:
        speaker.close()
    print("speaker test: a 440 Hz tone, then \"hello\"; %d samples, %d underruns"
          % (speaker.samples, speaker.underruns))
