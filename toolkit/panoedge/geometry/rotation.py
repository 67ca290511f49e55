"""Rotations of the sphere (NumPy).

Convention: right-handed 3x3 matrices on column rays, ``ray_world = R @ ray_cam``.
``rotation_from_ypr`` composes ``Ry(yaw) @ Rx(pitch) @ Rz(roll)`` so that, in the camera
frame (x right, y down, z forward), positive yaw turns the view to the right (+x),
positive pitch turns it up (-y) and positive roll turns the image clockwise as seen by the
viewer. Radians in code, degrees only in files and flags.
"""

from __future__ import annotations

import numpy as np


def rot_x(a: float) -> np.ndarray:
    """Rotation about +x by ``a`` radians; ``rot_x(a) @ (0,0,1)`` points up (-y) for a > 0."""
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(a: float) -> np.ndarray:
    """Rotation about +y by ``a`` radians; ``rot_y(a) @ (0,0,1)`` points right (+x) for a > 0."""
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(a: float) -> np.ndarray:
    """Rotation about +z (the optical axis) by ``a`` radians: x turns towards y (clockwise on screen)."""
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rotation_from_ypr(yaw: float, pitch: float, roll: float = 0.0) -> np.ndarray:
    """Camera-to-world rotation from yaw, pitch, roll in radians (see module docstring)."""
    return rot_y(yaw) @ rot_x(pitch) @ rot_z(roll)


def rotation_from_ypr_deg(yaw_deg: float, pitch_deg: float, roll_deg: float = 0.0) -> np.ndarray:
    """:func:`rotation_from_ypr` with degrees, for values read from files and flags."""
    return rotation_from_ypr(*np.deg2rad([yaw_deg, pitch_deg, roll_deg]))


def ypr_from_rotation(R: np.ndarray) -> tuple[float, float, float]:
    """Inverse of :func:`rotation_from_ypr`: ``(yaw, pitch, roll)`` in radians.

    Pitch is in [-pi/2, pi/2]; at gimbal lock (|pitch| = pi/2) roll is set to 0.
    """
    R = np.asarray(R, dtype=np.float64)
    fwd = R[:, 2]  # R @ (0,0,1) = (cos p sin y, -sin p, cos p cos y)
    pitch = float(np.arcsin(np.clip(-fwd[1], -1.0, 1.0)))
    if abs(np.cos(pitch)) < 1e-9:
        # Only yaw + roll is defined; with roll = 0, R[:, 0] = (cos yaw, 0, -sin yaw).
        return float(np.arctan2(-R[2, 0], R[0, 0])), pitch, 0.0
    yaw = float(np.arctan2(fwd[0], fwd[2]))
    # R = Ry Rx Rz  =>  Rz = (Ry Rx)^T R
    rz = (rot_y(yaw) @ rot_x(pitch)).T @ R
    roll = float(np.arctan2(rz[1, 0], rz[0, 0]))
    return yaw, pitch, roll


def rotation_from_rodrigues(rvec) -> np.ndarray:
    """Rotation matrix from an axis-angle vector (axis * angle in radians)."""
    rvec = np.asarray(rvec, dtype=np.float64).reshape(3)
    theta = float(np.linalg.norm(rvec))
    if theta < 1e-15:
        return np.eye(3)
    k = rvec / theta
    K = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(theta) * K + (1.0 - np.cos(theta)) * (K @ K)


def rodrigues_from_rotation(R: np.ndarray) -> np.ndarray:
    """Axis-angle vector of a rotation matrix (inverse of :func:`rotation_from_rodrigues`)."""
    R = np.asarray(R, dtype=np.float64)
    cos_t = np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0)
    theta = np.arccos(cos_t)
    if theta < 1e-12:
        return np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]]) / 2.0
    if np.pi - theta < 1e-6:
        # Near pi: axis from the largest diagonal term of (R + I) / 2 = k k^T.
        B = (R + np.eye(3)) / 2.0
        i = int(np.argmax(np.diag(B)))
        k = B[:, i] / np.sqrt(B[i, i])
        return k * theta
    w = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    return w / (2.0 * np.sin(theta)) * theta


def rotation_angle(R: np.ndarray) -> float:
    """Angle in radians of a rotation (the geodesic distance from identity)."""
    return float(np.linalg.norm(rodrigues_from_rotation(R)))


def rotation_aligning(a, b) -> np.ndarray:
    """The smallest rotation ``R`` with ``R @ a_hat == b_hat`` (e.g. levelling from gravity)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    axis = np.cross(a, b)
    s = np.linalg.norm(axis)
    c = float(np.dot(a, b))
    if s < 1e-12:
        if c > 0:
            return np.eye(3)
        # Opposite: rotate by pi about any axis orthogonal to a.
        ortho = np.cross(a, [1.0, 0.0, 0.0])
        if np.linalg.norm(ortho) < 1e-6:
            ortho = np.cross(a, [0.0, 1.0, 0.0])
        return rotation_from_rodrigues(ortho / np.linalg.norm(ortho) * np.pi)
    return rotation_from_rodrigues(axis / s * np.arctan2(s, c))
