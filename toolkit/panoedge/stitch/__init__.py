"""Dual-fisheye stitching: the rig model, lookup tables, blending, exposure, self-calibration.

Torch-free: a robot carries this without the training side (the optional GPU path in
:mod:`panoedge.stitch.gpu` imports torch only when it is used).
"""

from panoedge.stitch.rig import LAYOUTS, Lens, Rig, load_rig, rig_from_dict, save_rig
from panoedge.stitch.stitcher import Stitcher, level_from_gravity, level_from_ypr_deg

__all__ = ["LAYOUTS", "Lens", "Rig", "Stitcher", "level_from_gravity", "level_from_ypr_deg", "load_rig",
           "rig_from_dict", "save_rig"]
