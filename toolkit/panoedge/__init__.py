"""panoedge: an edge deployment toolkit for 360° cameras on robots.

Stages follow a frame's journey: ``geometry`` (sphere maths), ``synth`` (the procedural
360° world), ``stitch``, ``data``, ``models``, ``distill``, ``deploy``, ``runtime``, ``live``,
``eval`` and the thin ``cli`` on top.
"""

__version__ = "0.1.0"
CONVENTIONS_VERSION = "1"
