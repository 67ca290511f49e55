"""Cubemap faces: six 90-degree pinhole views of the sphere.

Face order and orientation (camera frame x right, y down, z forward): ``F`` (+z), ``R`` (+x),
``B`` (-z), ``L`` (-x), ``U`` (up, -y), ``D`` (down, +y); each face is a pinhole whose
rotation is :data:`FACE_YPR_DEG` (yaw, pitch, roll in degrees).
"""

from __future__ import annotations

import numpy as np

from panoedge.geometry.rotation import rotation_from_ypr_deg

FACES = ("F", "R", "B", "L", "U", "D")
FACE_YPR_DEG = {"F": (0, 0, 0), "R": (90, 0, 0), "B": (180, 0, 0), "L": (-90, 0, 0), "U": (0, 90, 0), "D": (0, -90, 0)}


def face_rotation(face: str) -> np.ndarray:
    """Camera-to-world rotation of a cube face."""
    return rotation_from_ypr_deg(*FACE_YPR_DEG[face])


def face_of_rays(rays) -> np.ndarray:
    """Index into :data:`FACES` of the face each ray ``(..., 3)`` passes through."""
    rays = np.asarray(rays, dtype=np.float64)
    local_z = np.stack([rays @ face_rotation(f)[:, 2] for f in FACES], axis=-1)
    return np.argmax(local_z, axis=-1)
