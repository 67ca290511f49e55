"""Sphere maths: ERP <-> sphere <-> pinhole/tangent/cubemap/fisheye, rotations, Möbius.

NumPy here (data and deployment); torch twins in :mod:`panoedge.geometry.torch_ops`
(imported on demand so this package never needs torch). Conventions: CONVENTIONS.md.
"""

from panoedge.geometry.cubemap import FACES, face_of_rays, face_rotation
from panoedge.geometry.erp_camera import ErpCamera
from panoedge.geometry.fisheye import LENS_MODELS, FisheyeCamera, get_lens_model
from panoedge.geometry.mobius import apply_mobius_matrix, mobius_zoom_matrix, mobius_zoom_rays
from panoedge.geometry.pinhole import PinholeCamera
from panoedge.geometry.remap import RemapTable
from panoedge.geometry.rotation import (
    rodrigues_from_rotation,
    rot_x,
    rot_y,
    rot_z,
    rotation_aligning,
    rotation_angle,
    rotation_from_rodrigues,
    rotation_from_ypr,
    rotation_from_ypr_deg,
    ypr_from_rotation,
)
from panoedge.geometry.sphere import (
    angle_between,
    check_erp_size,
    erp_area_weights,
    erp_lonlat_grid,
    erp_pixel_to_lonlat,
    erp_rays,
    erp_solid_angle,
    lonlat_to_erp_pixel,
    lonlat_to_ray,
    parse_hw,
    ray_to_lonlat,
)
from panoedge.geometry.transforms import (
    camera_table_for_rays,
    camera_to_erp,
    cubemap_to_erp,
    erp_table_for_rays,
    erp_to_cubemap,
    erp_to_fisheye,
    erp_to_perspective,
    mobius_erp,
    perspective_to_erp,
    rotate_erp,
)

__all__ = [name for name in dir() if not name.startswith("_")]
