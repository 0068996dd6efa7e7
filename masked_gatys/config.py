"""Settings shared by several commands, and defaults the CLI reads: no torch here.

The command line reads these for its ``--help`` (which must not import
torch), and the library's config dataclasses build on them, so each default
is written once.

>>> DEMO_SIZE, DEMO_MAX_LAYER
((48, 72), 'relu3_4')
"""

from __future__ import annotations

__all__ = ["DEMO_CONTENT", "DEMO_STYLE", "DEMO_SIZE", "DEMO_ITERATIONS", "DEMO_MAX_LAYER"]

# What the demo renders: a real-looking content eye and a synthetic style eye. The style eye
# and the size are those the shipped networks were trained with (masked_gatys/data/README.md),
# so every method is judged by the same objective.
DEMO_CONTENT = {"yaw": 18.0, "pitch": -8.0, "seed": 7}
DEMO_STYLE = {"yaw": 0.0, "pitch": 0.0, "seed": 0}
DEMO_SIZE = (48, 72)
DEMO_ITERATIONS = 150
# relu4/relu5 see 6x9 and 3x4 positions of a 48x72 eye; relu3_4 is also where the shared
# ImageNet file stops, so runs with random and with ImageNet weights use the same terms.
DEMO_MAX_LAYER = "relu3_4"
