"""Image transforms between projections, built on cached :class:`RemapTable` objects.

Every transform here first builds (once per geometry, cached) a table of where each output
pixel samples its source, then applies it with one ``cv2.remap``. ERP sources wrap at the
seam. Angles: degrees only in the public ``*_deg`` arguments, radians everywhere else.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from panoedge.errors import UsageError
from panoedge.geometry.cubemap import FACES, face_of_rays, face_rotation
from panoedge.geometry.fisheye import FisheyeCamera
from panoedge.geometry.mobius import mobius_zoom_rays
from panoedge.geometry.pinhole import PinholeCamera
from panoedge.geometry.remap import RemapTable
from panoedge.geometry.rotation import rotation_from_ypr_deg
from panoedge.geometry.sphere import check_erp_size, erp_rays, lonlat_to_erp_pixel, ray_to_lonlat


def _key(R) -> tuple:
    """A hashable cache key for a rotation matrix (rounded to 1e-12)."""
    return tuple(np.round(np.asarray(R, dtype=np.float64).ravel(), 12))


def _hw(out_hw, what: str) -> tuple[int, int]:
    if len(out_hw) != 2 or int(out_hw[0]) <= 0 or int(out_hw[1]) <= 0:
        raise UsageError(f"{what} {out_hw}: expected (height, width), both positive")
    return int(out_hw[0]), int(out_hw[1])


def _check_image(img, what: str) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim not in (2, 3) or img.shape[0] == 0 or img.shape[1] == 0:
        raise UsageError(f"{what}: expected an (H, W) or (H, W, C) image, got shape {img.shape}")
    return img


def erp_table_for_rays(src_hw, rays: np.ndarray, valid=None) -> RemapTable:
    """Table sampling an ERP image of size ``src_hw`` along rays ``(H, W, 3)`` (world frame).

    ``valid`` (optional, ``(H, W)`` bool) marks the output pixels that have a ray at all.
    """
    h, w = src_hw
    lon, lat = ray_to_lonlat(rays)
    u, v = lonlat_to_erp_pixel(lon, lat, h, w)
    return RemapTable.from_float(u, v, (h, w), wrap_x=True, valid=valid)


def camera_table_for_rays(camera, rays: np.ndarray) -> RemapTable:
    """Table sampling a pinhole or fisheye camera's image along rays ``(H, W, 3)`` (its frame)."""
    u, v, valid = camera.project(rays)
    return RemapTable.from_float(u, v, (camera.h, camera.w), wrap_x=False, valid=valid)


# -- ERP -> other views -------------------------------------------------------------------


@lru_cache(maxsize=64)
def _perspective_table(src_hw, fov, yaw, pitch, roll, out_hw) -> RemapTable:
    cam = PinholeCamera.from_fov(out_hw[0], out_hw[1], fov)
    rays, _ = cam.rays()
    R = rotation_from_ypr_deg(yaw, pitch, roll)
    return erp_table_for_rays(src_hw, rays @ R.T)


def erp_to_perspective(erp, fov_deg, yaw_deg, pitch_deg, out_hw, roll_deg=0.0) -> np.ndarray:
    """A pinhole view of an ERP image.

    Convention: yaw positive to the right, pitch positive up, roll clockwise, in degrees;
    ``fov_deg`` is the horizontal field of view (square pixels) or ``(hfov, vfov)``.
    Shapes: ``erp (H, W[, C])`` uint8 or float in, ``(out_h, out_w[, C])`` of the same dtype out.
    """
    erp = _check_image(erp, "erp_to_perspective")
    check_erp_size(*erp.shape[:2])
    fov = float(fov_deg) if np.ndim(fov_deg) == 0 else tuple(float(f) for f in fov_deg)
    table = _perspective_table(erp.shape[:2], fov, yaw=float(yaw_deg), pitch=float(pitch_deg), roll=float(roll_deg),
                               out_hw=_hw(out_hw, "out_hw"))
    return table.apply(erp)


@lru_cache(maxsize=16)
def _rotation_table(hw, rkey) -> RemapTable:
    R = np.array(rkey).reshape(3, 3)
    return erp_table_for_rays(hw, erp_rays(*hw) @ R.T)


def rotate_erp(erp, R, interpolation: str = "linear") -> np.ndarray:
    """Resample an ERP image so that ``out(d) = in(R @ d)`` for every output ray ``d``.

    With ``R`` the camera-to-world rotation of the capturing camera, the output is the
    panorama in the world frame's orientation (e.g. levelled from an IMU).
    """
    erp = _check_image(erp, "rotate_erp")
    check_erp_size(*erp.shape[:2])
    return _rotation_table(erp.shape[:2], _key(R)).apply(erp, interpolation)


@lru_cache(maxsize=16)
def _mobius_table(hw, scale, center) -> RemapTable:
    rays = erp_rays(*hw).reshape(-1, 3)
    src = mobius_zoom_rays(rays, 1.0 / scale, None if center is None else np.array(center))
    return erp_table_for_rays(hw, src.reshape(hw[0], hw[1], 3))


def mobius_erp(erp, scale: float, center=None, interpolation: str = "linear") -> np.ndarray:
    """Möbius zoom of an ERP image about ``center`` (a unit ray; default nadir) by ``scale``.

    ``scale > 1`` magnifies the content around ``center`` (PanDA's spatial augmentation).
    """
    erp = _check_image(erp, "mobius_erp")
    check_erp_size(*erp.shape[:2])
    c = None if center is None else tuple(np.round(np.asarray(center, dtype=np.float64), 12))
    return _mobius_table(erp.shape[:2], float(scale), c).apply(erp, interpolation)


@lru_cache(maxsize=16)
def _fisheye_from_erp_table(src_hw, camera: FisheyeCamera, rkey) -> RemapTable:
    R = np.array(rkey).reshape(3, 3)
    rays, valid = camera.rays()
    return erp_table_for_rays(src_hw, rays @ R.T, valid)


def erp_to_fisheye(erp, camera: FisheyeCamera, R=None, interpolation: str = "linear") -> tuple[np.ndarray, np.ndarray]:
    """What ``camera`` (rotated by ``R``, camera-to-world) sees of an ERP scene: ``(image, valid)``."""
    erp = _check_image(erp, "erp_to_fisheye")
    check_erp_size(*erp.shape[:2])
    table = _fisheye_from_erp_table(erp.shape[:2], camera, _key(np.eye(3) if R is None else R))
    return table.apply(erp, interpolation), table.valid.copy()


# -- other views -> ERP -------------------------------------------------------------------


@lru_cache(maxsize=16)
def _to_erp_table(camera, rkey, erp_hw) -> RemapTable:
    R = np.array(rkey).reshape(3, 3)
    return camera_table_for_rays(camera, erp_rays(*erp_hw) @ R)  # world ray -> camera frame: R^T d


def camera_to_erp(img, camera, erp_hw, R=None, interpolation: str = "linear") -> tuple[np.ndarray, np.ndarray]:
    """Project a pinhole or fisheye image (camera-to-world rotation ``R``) onto an ERP grid.

    Returns ``(erp (H, W[, C]), valid (H, W))``; pixels the camera does not see are 0.
    """
    img = _check_image(img, "camera_to_erp")
    h, w = check_erp_size(*_hw(erp_hw, "erp_hw"))
    if img.shape[:2] != (camera.h, camera.w):
        raise UsageError(f"image {img.shape[1]}x{img.shape[0]} does not match the camera's {camera.w}x{camera.h}")
    table = _to_erp_table(camera, _key(np.eye(3) if R is None else R), (h, w))
    return table.apply(img, interpolation), table.valid.copy()


def perspective_to_erp(img, fov_deg, yaw_deg, pitch_deg, erp_hw, roll_deg=0.0, interpolation="linear"):
    """Inverse of :func:`erp_to_perspective`: ``(erp, valid)`` covering the view's footprint."""
    img = _check_image(img, "perspective_to_erp")
    cam = PinholeCamera.from_fov(img.shape[0], img.shape[1], fov_deg if np.ndim(fov_deg) == 0 else tuple(fov_deg))
    return camera_to_erp(img, cam, erp_hw, rotation_from_ypr_deg(yaw_deg, pitch_deg, roll_deg), interpolation)


# -- cubemap ------------------------------------------------------------------------------


def erp_to_cubemap(erp, face_w: int, interpolation: str = "linear") -> dict[str, np.ndarray]:
    """Six ``face_w x face_w`` faces (:data:`~panoedge.geometry.cubemap.FACES`) of an ERP image."""
    erp = _check_image(erp, "erp_to_cubemap")
    check_erp_size(*erp.shape[:2])
    return {f: _cube_face_table(erp.shape[:2], int(face_w), f).apply(erp, interpolation) for f in FACES}


@lru_cache(maxsize=32)
def _cube_face_table(src_hw, face_w, face) -> RemapTable:
    cam = PinholeCamera.from_fov(face_w, face_w, 90.0)
    rays, _ = cam.rays()
    return erp_table_for_rays(src_hw, rays @ face_rotation(face).T)


@lru_cache(maxsize=16)
def _cube_to_erp_table(face_w, erp_hw) -> RemapTable:
    """Samples a horizontal strip ``(face_w, 6 face_w)`` of faces in :data:`FACES` order."""
    rays = erp_rays(*erp_hw)
    idx = face_of_rays(rays)
    cam = PinholeCamera.from_fov(face_w, face_w, 90.0)
    mx = np.zeros(erp_hw)
    my = np.zeros(erp_hw)
    for i, f in enumerate(FACES):
        sel = idx == i
        u, v, _ = cam.project(rays[sel] @ face_rotation(f))
        # Clamp inside the face so bilinear sampling never bleeds into the neighbour in the strip.
        mx[sel] = np.clip(u, 0.0, face_w - 1.0) + i * face_w
        my[sel] = np.clip(v, 0.0, face_w - 1.0)
    return RemapTable.from_float(mx, my, (face_w, 6 * face_w))


def cubemap_to_erp(faces: dict[str, np.ndarray], erp_hw, interpolation: str = "linear") -> np.ndarray:
    """Assemble six faces (dict keyed by :data:`FACES`, all ``(w, w[, C])``) into an ERP image."""
    missing = [f for f in FACES if f not in faces]
    if missing:
        raise UsageError(f"cubemap_to_erp: missing faces {missing}; expected {list(FACES)}")
    shapes = {np.asarray(faces[f]).shape for f in FACES}
    if len(shapes) != 1 or next(iter(shapes))[0] != next(iter(shapes))[1]:
        raise UsageError(f"cubemap_to_erp: faces must be square and all the same shape, got {sorted(shapes)}")
    face_w = next(iter(shapes))[0]
    strip = np.concatenate([np.asarray(faces[f]) for f in FACES], axis=1)
    h, w = check_erp_size(*_hw(erp_hw, "erp_hw"))
    return _cube_to_erp_table(face_w, (h, w)).apply(strip, interpolation)
