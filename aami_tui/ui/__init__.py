"""The console (Textual). Imported before Textual itself is, so the frame rate below applies.

Textual repaints a screen on its update timer, at most MAX_FPS times a second (60 by default): a key's effect waits
for the next tick, up to 16.7 ms, and while a step runs (frames for its progress) for the tick after the frame in
hand. At 120 a key pressed during an apply reached the screen sooner (bench.py keys, `s` p50 43 -> 29 ms); the
screen still repaints only what changed and only when something did, so idle costs the same. A TEXTUAL_FPS
already set (the operator's, a test's) is kept."""

import os

os.environ.setdefault("TEXTUAL_FPS", "120")
