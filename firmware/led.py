"""The status LED: what the storyteller is doing, as the board profile's LED can show it.

    from led import StatusLED
    led = StatusLED({"pin": 21, "kind": "ws2812", "color_order": "GRB"})  # board.json's led
    led.show(thinking=True)                  # the model is writing
    led.show(thinking=True, speaking=True)   # ... while the story is being read out
    led.off()

A WS2812 shows blue while thinking, green while speaking, cyan for both; a plain LED is
lit while thinking and blinks while speaking (spoke() toggles it once per audio block).
"""

from machine import Pin
from micropython import const

_LEVEL = const(24)  # of 255: the on-board RGB LEDs are bright


class StatusLED:
    def __init__(self, spec):
        self.kind = spec.get("kind") if spec else None
        self.thinking = False
        self.speaking = False
        self.lit = False
        if self.kind == "ws2812":
            import neopixel
            self.np = neopixel.NeoPixel(Pin(spec["pin"], Pin.OUT), 1)
            order = spec.get("color_order", "GRB").upper()
            if sorted(order) != ["B", "G", "R"]:
                raise ValueError("led color_order must name R, G and B once each, not %r"
                                 % order)
            # NeoPixel.ORDER gives, for red, green, blue and white, each one's byte.
            self.np.ORDER = (order.index("R"), order.index("G"), order.index("B"), 3)
        elif self.kind == "gpio":
            self.active_low = bool(spec.get("active_low", False))
            self.pin = Pin(spec["pin"], Pin.OUT, value=1 if self.active_low else 0)
        elif self.kind is not None:
            raise ValueError("led kind must be gpio or ws2812, not %r" % self.kind)

    def show(self, thinking=False, speaking=False):
        if thinking == self.thinking and speaking == self.speaking:
            return
        self.thinking = thinking
        self.speaking = speaking
        if self.kind == "ws2812":
            self.np[0] = (0, _LEVEL if speaking else 0, _LEVEL if thinking else 0)
            self.np.write()
        elif self.kind == "gpio":
            self._light(thinking or speaking)

    def spoke(self):
        """One more block went to the speaker: a plain LED blinks while speaking."""
        if self.kind == "gpio" and self.speaking:
            self._light(not self.lit)

    def off(self):
        self.show(False, False)

    def _light(self, on):
        self.lit = on
        self.pin.value(0 if on == self.active_low else 1)
