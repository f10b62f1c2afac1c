"""`neopixel` for the simulator: a WS2812 chain on a simulated pin, recording each write.

MicroPython code, the same interface as the board's neopixel module. Each write() is
recorded as a "neopixel" event with the bytes sent and the colour each LED shows: the
board profile's led.color_order says how the LED reads the bytes, so a program that
sends them in the wrong order is seen to show the wrong colour.
"""

import simboard
from machine import Pin


class NeoPixel:
    ORDER = (1, 0, 2, 3)  # byte of red, green, blue and white: GRB on the wire

    def __init__(self, pin, n, bpp=3, timing=1):
        if not isinstance(pin, Pin):
            raise TypeError("pin must be a Pin")
        if bpp not in (3, 4):
            raise ValueError("bpp must be 3 or 4")
        self.pin = pin
        self.n = n
        self.bpp = bpp
        self.buf = bytearray(n * bpp)

    def __len__(self):
        return self.n

    def __setitem__(self, i, v):
        offset = i * self.bpp
        for k in range(self.bpp):
            self.buf[offset + self.ORDER[k]] = v[k]

    def __getitem__(self, i):
        offset = i * self.bpp
        return tuple(self.buf[offset + self.ORDER[k]] for k in range(self.bpp))

    def fill(self, v):
        for i in range(self.n):
            self[i] = v

    def write(self):
        led = simboard.board().get("led", {})
        order = led.get("color_order", "GRB") if led.get("pin") == self.pin.id else "GRB"
        shown = []
        for i in range(self.n):
            wire = self.buf[i * self.bpp:i * self.bpp + 3]
            shown.append([wire[order.index(c)] for c in "RGB"])
        simboard.event("neopixel", pin=self.pin.id, wire=list(self.buf), shown=shown)
