"""Dual-fisheye stitching: the rig model, lookup tables, blending, exposure, self-calibration.

Torch-free: a robot carries this without the training side.
"""

from panoedge.stitch.rig import LAYOUTS, Lens, Rig, load_rig, save_rig

__all__ = ["LAYOUTS", "Lens", "Rig", "load_rig", "save_rig"]
