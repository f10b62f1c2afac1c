# micro-llm main.py: tells a story at power-on or on a button press, if the settings say.
# Runs after boot.py at power-on (not after a soft reset in the raw REPL, which tools use).
# By default it does nothing and the REPL comes up. To tell a story at power-on, or each
# time a button is pressed, add to /micro_llm.json:
#     "storyteller": {"start": "boot"}                  or
#     "storyteller": {"start": "button", "button": 0}   (GPIO0: the BOOT button)
# with "prompt", "steps", "voice" and "volume" if wanted. Ctrl-C leaves for the REPL.
import storyteller

storyteller.start()
