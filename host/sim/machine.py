"""`machine` for the simulator: the ESP32-S3's Pin and I2S, recording what they receive.

MicroPython code: in the unix port it takes the place of the port's own `machine`
(host/sim comes first on the path). It behaves as the board's module does where the
firmware can tell, and checks arguments as the board does: a GPIO the profiled board does
not have (or gives to its flash or PSRAM) is ValueError("invalid pin"), I2S bits other
than 16 or 32 are ValueError("invalid bits"), and so on. simboard.py holds the board
profile, the virtual clock and the record. The amplifier is wired as the profile says:
an I2S on other pins is recorded, but nothing is heard.

I2S transmits like the board's: the DMA owns `ibuf` bytes and plays them at `rate` frames
per second of the virtual clock; in non-blocking mode (irq set) write() returns at once,
the DMA takes the buffer's frames as it has room, and the handler is scheduled
(micropython.schedule) when the whole buffer has been taken, to run between bytecodes of
the main program as on the board. A frame is two slots; on the ESP32-S3 a MONO stream
fills both slots with successive samples (upstream MicroPython #11635), and that is what
is simulated. When the DMA runs dry before the next buffer comes, the amplifier plays
silence: an underrun, recorded with its length. deinit() stops at once: what the DMA still
holds is never played.
"""

import _thread
import time

import micropython
import uctypes
import simboard

_BUSY = [0]  # >0 while the main program is inside an I2S method: callbacks wait


@micropython.viper
def _mix16(out: ptr16, frames: ptr16, n: int):
    """out[i] = (left + right) // 2 of n frames of two signed 16-bit slots."""
    for i in range(n):
        left = frames[2 * i]
        right = frames[2 * i + 1]
        if left > 32767:
            left -= 65536
        if right > 32767:
            right -= 65536
        out[i] = (left + right) >> 1


@micropython.viper
def _mix32(out: ptr16, frames: ptr16, n: int):
    """As _mix16, for 32-bit slots: the high 16 bits of each (an amplifier's 16 MSBs)."""
    for i in range(n):
        left = frames[4 * i + 1]
        right = frames[4 * i + 3]
        if left > 32767:
            left -= 65536
        if right > 32767:
            right -= 65536
        out[i] = (left + right) >> 1


def idle():
    time.sleep_us(100)


def freq(hz=None):
    return 240_000_000


def unique_id():
    return b"\x00\x00\x00\x00\x00\x00"


def disable_irq():
    return 0


def enable_irq(state=0):
    pass


def reset():
    raise SystemExit("machine.reset()")


def soft_reset():
    raise SystemExit("machine.soft_reset()")


def _bytes_view(buf):
    """A byte-by-byte memoryview of any buffer (an array of 16-bit samples too), without a
    copy: the DMA reads the program's buffer as it plays, as the board's does."""
    view = memoryview(buf)
    if len(view) == 0:
        return view
    size = uctypes.addressof(view[1:]) - uctypes.addressof(view)
    if size == 1:
        return view
    return memoryview(uctypes.bytearray_at(uctypes.addressof(view), len(view) * size))


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, id, mode=-1, pull=-1, *, value=None, drive=None, hold=None):
        if not isinstance(id, int) or not simboard.valid_pin(id):
            raise ValueError("invalid pin")
        self.id = id
        self.mode = None
        self.pull = None
        self.level = 0
        self.handler = None
        self.init(mode, pull, value=value)

    def init(self, mode=-1, pull=-1, *, value=None, drive=None, hold=None):
        if mode != -1:
            if mode not in (None, Pin.IN, Pin.OUT, Pin.OPEN_DRAIN):
                raise ValueError("invalid pin mode")
            self.mode = mode
        if pull != -1:
            if pull not in (None, Pin.PULL_UP, Pin.PULL_DOWN):
                raise ValueError("invalid pull")
            self.pull = pull
        if value is not None:
            self._drive(value)

    def value(self, x=None):
        if x is None:
            if self.mode in (Pin.OUT, Pin.OPEN_DRAIN):
                return self.level
            return simboard.input_level(self.id)
        self._drive(x)

    def __call__(self, x=None):
        return self.value(x)

    def on(self):
        self._drive(1)

    def off(self):
        self._drive(0)

    def irq(self, handler=None, trigger=3):
        # Limitation: edges on a scripted input do not fire the handler; poll value().
        self.handler = handler

    def _drive(self, value):
        value = 1 if value else 0
        if value != self.level or self.mode is None:
            simboard.event("pin", pin=self.id, value=value)
        self.level = value

    def __repr__(self):
        return "Pin(%d)" % self.id


class I2S:
    RX = 0
    TX = 1
    MONO = 0
    STEREO = 1

    _active = {}

    def __init__(self, id, *, sck, ws, sd, mck=None, mode, bits, format, rate, ibuf):
        if id not in (0, 1):
            raise ValueError("invalid id")
        old = I2S._active.get(id)
        if old is not None:
            old.deinit()  # as the board does: the id's peripheral starts afresh
        self.id = id
        self.lock = _thread.allocate_lock()
        self.running = False
        self.session = 0  # one per init: a DMA thread or a callback of an old one stops
        self._configure(sck, ws, sd, mck, mode, bits, format, rate, ibuf)

    def init(self, *, sck, ws, sd, mck=None, mode, bits, format, rate, ibuf):
        self.deinit()
        self._configure(sck, ws, sd, mck, mode, bits, format, rate, ibuf)

    def _configure(self, sck, ws, sd, mck, mode, bits, format, rate, ibuf):
        for name, pin in (("sck", sck), ("ws", ws), ("sd", sd)):
            if not isinstance(pin, Pin):
                raise TypeError("%s must be a Pin" % name)
        if mck is not None:
            raise ValueError("invalid mck: the ESP32-S3 board here drives no MCLK")
        if mode not in (I2S.RX, I2S.TX):
            raise ValueError("invalid mode")
        if bits not in (16, 32):
            raise ValueError("invalid bits")
        if format not in (I2S.MONO, I2S.STEREO):
            raise ValueError("invalid format")
        if not isinstance(rate, int) or rate <= 0:
            raise ValueError("invalid rate")
        if not isinstance(ibuf, int) or ibuf <= 0:
            raise ValueError("invalid ibuf")
        if mode == I2S.RX:
            raise NotImplementedError("the simulated board has no I2S microphone")

        self.bits = bits
        self.format = format
        self.rate = rate
        self.frame_bytes = bits // 8 * 2
        self.capacity = ibuf // self.frame_bytes
        if self.capacity == 0:
            raise ValueError("invalid ibuf")
        self.wired = (sck.id, ws.id, sd.id) == simboard.amplifier_pins()
        self.ring = bytearray(self.capacity * self.frame_bytes)
        self.mono = bytearray(self.capacity * 2)
        self.head = 0          # next frame to play, in the ring
        self.fill = 0          # frames in the ring
        self.pending = []      # [bytes, taken, buffer]: buffers written, not all taken
        self.taken = []        # buffers all taken, their handler call still to schedule
        self.handler = None
        self.origin = None     # virtual us of the first frame taken: the frame clock's 0
        self.clock = 0         # frames of time played out (or dry) since the origin
        self.dry_since = None  # frame clock when the ring ran dry with nothing pending
        simboard.event("i2s_init", id=self.id, pins=[sck.id, ws.id, sd.id], bits=bits,
                       format="stereo" if format == I2S.STEREO else "mono", rate=rate,
                       ibuf=ibuf, wired=self.wired)
        I2S._active[self.id] = self
        self.running = True
        self.session += 1
        _thread.start_new_thread(self._dma, (self.session,))

    # ------------------------------------------------------------ the program's side

    def irq(self, handler):
        self.handler = handler

    def write(self, buf):
        if not self.running:
            raise OSError("I2S is not initialised")
        view = _bytes_view(buf)
        if len(view) % self.frame_bytes:
            # Limitation: the stand-in takes whole frames only (the board carries a part
            # frame over to the next write).
            raise ValueError("write %d bytes: not whole %d-byte frames"
                             % (len(view), self.frame_bytes))
        _BUSY[0] += 1
        try:
            with self.lock:
                self._step()
                if self.handler is not None and self.pending:
                    # As the board: a buffer still being taken is dropped for the new one,
                    # and its handler is never called.
                    simboard.event("i2s_overlapping_write", id=self.id)
                    self.pending = []
                self.pending.append([view, 0, buf])
                simboard.event("i2s_write", id=self.id, bytes=len(view))
                simboard.stats["writes"] += 1
                self._step()
                self._notify()
            if self.handler is None:  # blocking mode: wait until the DMA has it all
                while self.running and self.pending:
                    time.sleep_us(200)
        finally:
            _BUSY[0] -= 1
        return len(view)

    def readinto(self, buf):
        raise OSError("I2S is set up for transmitting")

    def deinit(self):
        if not self.running:
            return
        _BUSY[0] += 1
        try:
            with self.lock:
                self._step()
                self.running = False
                simboard.event("i2s_deinit", id=self.id, unplayed=self.fill,
                               unsent=sum(len(e[0]) - e[1] for e in self.pending)
                               // self.frame_bytes, played=simboard.stats["played"])
                self.fill = 0
                self.pending = []
                self.taken = []
            if I2S._active.get(self.id) is self:
                del I2S._active[self.id]
        finally:
            _BUSY[0] -= 1

    @staticmethod
    def shift(*, buf, bits, shift):
        """Shift every signed sample of buf (16 or 32 bits) left by `shift` (right if
        negative), in place."""
        if bits not in (16, 32):
            raise ValueError("invalid bits")
        size = bits // 8
        top = 1 << (bits - 1)
        mask = (1 << bits) - 1
        for at in range(0, len(buf) - size + 1, size):
            v = 0
            for k in range(size):
                v |= buf[at + k] << (8 * k)
            v = v - 2 * top if v >= top else v
            v = (v << shift if shift >= 0 else v >> -shift) & mask
            for k in range(size):
                buf[at + k] = (v >> (8 * k)) & 0xFF

    # ------------------------------------------------------------ the DMA's side

    def _dma(self, session):
        # The DMA and the driver's task: wakes when the ring will have run down, plays
        # what the virtual clock says has been played, takes what fits, schedules calls.
        while self.running and self.session == session:
            with self.lock:
                if not self.running or self.session != session:
                    break
                wait = self._step()
                self._notify()
            time.sleep_us(max(100, min(wait, 1000)))

    def _frame_clock(self):
        return (simboard.now_us() - self.origin) * self.rate // 1_000_000

    def _step(self):
        """Bring the DMA up to now; the real microseconds until it next needs attention."""
        if self.origin is None:
            if not self.pending:
                return 20000
            self.origin = simboard.now_us()
        target = self._frame_clock()
        due = target - self.clock
        while due > 0:
            if self.fill == 0 and not self._take():
                if self.dry_since is None:
                    self.dry_since = target - due
                break
            k = min(due, self.fill)
            self._play(k)
            due -= k
        self.clock = target
        while self.fill < self.capacity and self._take():
            pass

        if self.fill == 0:
            return 20000
        frames = self.fill
        if self.pending:
            view, n = self.pending[0][:2]
            left = (len(view) - n) // self.frame_bytes
            frames = max(1, left - (self.capacity - self.fill))
        return int(frames * 1_000_000 / (self.rate * simboard.speed)) + 1

    def _take(self):
        """Copy frames of the first pending buffer into the ring; False if none."""
        if not self.pending:
            return False
        entry = self.pending[0]
        view, n = entry[0], entry[1]
        fb = self.frame_bytes
        frames = min((len(view) - n) // fb, self.capacity - self.fill)
        if frames <= 0:
            return False
        if self.dry_since is not None:
            gap = self.clock - self.dry_since
            simboard.stats["underruns"] += 1
            simboard.event("underrun", id=self.id, at=simboard.stats["played"], frames=gap)
            self.dry_since = None
        tail = (self.head + self.fill) % self.capacity
        while frames:
            k = min(frames, self.capacity - tail)
            chunk = view[n:n + k * fb]
            self.ring[tail * fb:(tail + k) * fb] = chunk
            simboard.write_i2s(chunk)
            simboard.stats["frames"] += k
            n += k * fb
            self.fill += k
            frames -= k
            tail = (tail + k) % self.capacity
        entry[1] = n
        if n == len(view):
            self.pending.pop(0)
            self.taken.append(simboard.real_us())
        return True

    def _play(self, frames):
        """The amplifier plays `frames` frames from the ring."""
        fb = self.frame_bytes
        while frames:
            k = min(frames, self.capacity - self.head)
            if self.wired:
                src = memoryview(self.ring)[self.head * fb:(self.head + k) * fb]
                if self.bits == 16:
                    _mix16(self.mono, src, k)
                else:
                    _mix32(self.mono, src, k)
                simboard.write_speaker(memoryview(self.mono)[:2 * k])
                simboard.stats["played"] += k
            self.head = (self.head + k) % self.capacity
            self.fill -= k
            frames -= k

    def _notify(self):
        while self.taken and self.handler is not None:
            if not simboard.schedule(self._deliver, (self.session, self.taken[0])):
                break
            self.taken.pop(0)
        if self.handler is None:
            self.taken = []

    def _deliver(self, call):
        # Runs in the main program, between its bytecodes, as the board's scheduler runs
        # the handler; never inside an I2S method (the board runs none inside its C code).
        session, taken_at = call
        if not self.running or self.session != session or self.handler is None:
            return
        if _BUSY[0]:
            # Limitation: if the scheduler's queue is full just now, this call is lost
            # (the board's queue has room for the one call a buffer makes).
            simboard.schedule(self._deliver, call)
            return
        simboard.irq_latency(simboard.real_us() - taken_at)
        self.handler(self)
