"""Tangent-patch layouts on the sphere, their fusion tables and the relative-depth alignment (NumPy).

Convention (CONVENTIONS.md): x right, y down, z forward; patch ``n`` is a pinhole camera with
camera-to-world rotation ``R_n`` (``ray_world = R_n @ ray_cam``) looking along centre ``c_n``.
Centres are a Fibonacci sphere (near-uniform, deterministic, no patch exactly on a pole); each
patch has roll 0 (its "up" towards the north pole). ``fov_deg`` is the horizontal field of view
and pixels are square, so a ``192 x 256`` patch at 100 deg spans about 100 x 84 deg (the
default: 20 such patches see every direction at least twice).

A direction is *covered* by a patch when it projects strictly inside the patch image. A layout
is valid only if every direction (checked on a 1-degree ERP grid, and again on each ERP grid a
fusion table is built for) is covered by at least ``min_cover`` patches: 2 means every pixel
lies in an overlap, which the relative-depth alignment and seamless fusion need.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from panoedge.errors import UsageError
from panoedge.geometry import PinholeCamera, erp_rays, lonlat_to_ray, rotation_from_ypr

MAX_PAIRS = 60_000
"""Overlap correspondences kept per image for the alignment solve (spread over the sphere)."""


@dataclass(frozen=True)
class PatchLayout:
    """``n_patches`` gnomonic patches of ``patch_hw`` pixels and horizontal ``fov_deg``.

    Validated on construction: sizes positive, ``0 < fov_deg < 180`` and full coverage by at
    least ``min_cover`` patches (else ``UsageError`` naming the numbers and a count that works).
    """

    n_patches: int = 20
    fov_deg: float = 100.0
    patch_hw: tuple[int, int] = (192, 256)
    min_cover: int = 2

    def __post_init__(self):
        object.__setattr__(self, "patch_hw", tuple(int(v) for v in self.patch_hw))
        h, w = self.patch_hw
        if int(self.n_patches) < 1 or h < 2 or w < 2 or int(self.min_cover) < 1:
            raise UsageError(f"patch layout: n_patches {self.n_patches}, patch size {h}x{w}, min_cover "
                             f"{self.min_cover}: need n_patches >= 1, sides >= 2 px and min_cover >= 1")
        if not 1.0 < float(self.fov_deg) < 179.0:
            raise UsageError(f"patch fov_deg {self.fov_deg}: a tangent patch needs 1 < fov < 179 degrees")
        worst = _min_cover(int(self.n_patches), float(self.fov_deg), self.patch_hw)
        if worst < self.min_cover:
            hint = _enough_patches(float(self.fov_deg), self.patch_hw, int(self.min_cover))
            hfov, vfov = self.fov_pair()
            raise UsageError(f"patch layout of {self.n_patches} patches, {hfov:.0f}x{vfov:.0f} deg ({h}x{w} px): "
                             f"some directions are seen by only {worst} patch(es); need {self.min_cover} "
                             f"(min_cover). {hint}")

    def fov_pair(self) -> tuple[float, float]:
        """``(hfov, vfov)`` in degrees (square pixels)."""
        return _fov_pair(float(self.fov_deg), self.patch_hw)

    def camera(self) -> PinholeCamera:
        """The pinhole every patch uses (its own frame)."""
        return PinholeCamera.from_fov(self.patch_hw[0], self.patch_hw[1], float(self.fov_deg))

    def centres(self) -> np.ndarray:
        """``(N, 3)`` unit rays: the patch centres (Fibonacci sphere, north to south)."""
        return _centres(int(self.n_patches))

    def rotations(self) -> np.ndarray:
        """``(N, 3, 3)`` camera-to-world rotations with ``R_n @ (0, 0, 1) == centres()[n]``."""
        return _rotations(int(self.n_patches))

    def to_dict(self) -> dict:
        return {"n_patches": int(self.n_patches), "fov_deg": float(self.fov_deg),
                "patch_hw": list(self.patch_hw), "min_cover": int(self.min_cover)}


def make_layout(n_patches: int = PatchLayout.n_patches, fov_deg: float = PatchLayout.fov_deg,
                patch_hw=PatchLayout.patch_hw, min_cover: int = PatchLayout.min_cover) -> PatchLayout:
    """A validated :class:`PatchLayout`; ``patch_hw`` may be an int (square patches)."""
    hw = (int(patch_hw), int(patch_hw)) if np.ndim(patch_hw) == 0 else tuple(int(v) for v in patch_hw)
    return PatchLayout(int(n_patches), float(fov_deg), hw, int(min_cover))


DEFAULT_COUNTS = (20, 26, 32, 40, 50, 64)
"""Patch counts :func:`default_layout` tries, fewest first."""


def default_layout(patch_hw) -> PatchLayout:
    """The default layout for a teacher whose input is ``patch_hw``: the default field of view
    with the fewest of :data:`DEFAULT_COUNTS` patches that cover the sphere (20 for 4:3 patches;
    more where a wide or short patch leaves gaps near the poles). Cached per size."""
    return _default_layout(tuple(int(v) for v in patch_hw))


@lru_cache(maxsize=32)
def _default_layout(patch_hw: tuple[int, int]) -> PatchLayout:
    for n in DEFAULT_COUNTS[:-1]:
        try:
            return make_layout(n_patches=n, patch_hw=patch_hw)
        except UsageError:
            continue
    return make_layout(n_patches=DEFAULT_COUNTS[-1], patch_hw=patch_hw)  # or the layout's own error and hint


@lru_cache(maxsize=64)
def _centres(n: int) -> np.ndarray:
    i = np.arange(n, dtype=np.float64)
    lat = np.arcsin(1.0 - (2.0 * i + 1.0) / n)
    lon = np.remainder(i * np.pi * (3.0 - np.sqrt(5.0)) + np.pi, 2 * np.pi) - np.pi
    c = lonlat_to_ray(lon, lat)
    c.setflags(write=False)
    return c


@lru_cache(maxsize=64)
def _rotations(n: int) -> np.ndarray:
    c = _centres(n)
    lon, lat = np.arctan2(c[:, 0], c[:, 2]), -np.arcsin(np.clip(c[:, 1], -1, 1))
    r = np.stack([rotation_from_ypr(a, b, 0.0) for a, b in zip(lon, lat)])
    r.setflags(write=False)
    return r


def _fov_pair(fov: float, hw: tuple[int, int]) -> tuple[float, float]:
    return fov, float(np.rad2deg(2 * np.arctan(np.tan(np.deg2rad(fov) / 2) * hw[0] / hw[1])))


def _project(layout_cam: PinholeCamera, hv: tuple[float, float], cam: np.ndarray):
    """``(inside, weight, u, v)`` of camera-frame rays ``(..., 3)`` in one patch."""
    x, y, z = cam[..., 0], cam[..., 1], cam[..., 2]
    a = np.arctan2(x, z) / np.deg2rad(hv[0] / 2)
    b = np.arctan2(y, z) / np.deg2rad(hv[1] / 2)
    inside = (z > 1e-9) & (np.abs(a) < 1) & (np.abs(b) < 1)
    weight = np.where(inside, np.cos(np.pi * a / 2) ** 2 * np.cos(np.pi * b / 2) ** 2, 0.0)
    zs = np.where(inside, z, 1.0)
    return inside, weight, layout_cam.fx * x / zs + layout_cam.cx, layout_cam.fy * y / zs + layout_cam.cy


@lru_cache(maxsize=256)
def _min_cover(n: int, fov: float, hw: tuple[int, int], grid_h: int = 180) -> int:
    """The fewest patches that see any direction of a ``grid_h x 2 grid_h`` ERP grid."""
    rays = erp_rays(grid_h, 2 * grid_h)
    cam, hv = PinholeCamera.from_fov(hw[0], hw[1], fov), _fov_pair(fov, hw)
    count = sum(_project(cam, hv, rays @ R)[0].astype(np.int32) for R in _rotations(n))
    return int(count.min())


def _enough_patches(fov: float, hw: tuple[int, int], need: int) -> str:
    """A hint naming the smallest patch count that covers (searched from the solid-angle bound)."""
    h, v = np.deg2rad(_fov_pair(fov, hw)) / 2
    start = max(2, int(np.ceil(need * 4 * np.pi / (4 * np.arcsin(np.sin(h) * np.sin(v))))))
    for n in range(start, 400):
        if _min_cover(n, fov, hw, 45) >= need and _min_cover(n, fov, hw) >= need:
            return f"With fov {fov:g} deg and this patch size, n_patches={n} covers it."
    return "Widen the field of view."


@lru_cache(maxsize=16)
def patch_rays(layout: PatchLayout) -> np.ndarray:
    """World rays of every patch pixel stacked as a strip ``(N * h, w, 3)`` float32 (read-only)."""
    cam, _ = layout.camera().rays()
    rays = np.concatenate([cam @ R.T for R in layout.rotations()]).astype(np.float32)
    rays.setflags(write=False)
    return rays


@dataclass(eq=False)
class FusionTable:
    """Where each ERP pixel samples the patches, as ``M`` (pixel, patch) entries.

    ``pix`` ``(M,)`` flat ERP index, ``patch`` ``(M,)``, ``grid`` ``(M, 2)`` ``grid_sample``
    coordinates in the ``(N * h, w)`` patch strip, ``weight`` ``(M,)``, ``cos`` ``(M,)`` the
    ray's z in the patch frame, ``wsum`` ``(H * W,)`` summed weights; ``pairs`` ``(P, 2)``
    entries seeing the same pixel and ``pair_w`` ``(P,)`` their weights (area x overlap).
    """

    hw: tuple[int, int]
    n_patches: int
    pix: np.ndarray
    patch: np.ndarray
    grid: np.ndarray
    weight: np.ndarray
    cos: np.ndarray
    wsum: np.ndarray
    pairs: np.ndarray
    pair_w: np.ndarray
    _torch: dict = field(default_factory=dict, repr=False)

    def torch(self, name: str, device, dtype=None):
        """Field ``name`` as a torch tensor on ``device`` (cached); floats as ``dtype`` (default float32)."""
        import torch

        key = (name, str(device), str(dtype))
        if key not in self._torch:
            arr = getattr(self, name)
            t = torch.from_numpy(np.ascontiguousarray(arr))
            t = t.to(device, dtype or torch.float32) if t.is_floating_point() else t.to(device)
            self._torch[key] = t
        return self._torch[key]


@lru_cache(maxsize=8)
def fusion_table(layout: PatchLayout, erp_hw: tuple[int, int]) -> FusionTable:
    """The cached :class:`FusionTable` of ``layout`` on an ``H x W`` ERP grid."""
    from panoedge.geometry import check_erp_size, erp_area_weights

    h_e, w_e = check_erp_size(*erp_hw, what="fusion ERP size")
    n, (h, w) = layout.n_patches, layout.patch_hw
    rays, cam, hv = erp_rays(h_e, w_e).reshape(-1, 3), layout.camera(), layout.fov_pair()
    parts = []
    for i, R in enumerate(layout.rotations()):
        c = rays @ R
        inside, wt, u, v = _project(cam, hv, c)
        idx = np.flatnonzero(inside)
        gx = (np.clip(u[idx], 0, w - 1) + 0.5) / w * 2 - 1
        gy = (i * h + np.clip(v[idx], 0, h - 1) + 0.5) / (n * h) * 2 - 1
        parts.append((idx, np.full(idx.size, i), np.stack([gx, gy], 1), wt[idx], c[idx, 2]))
    pix, patch, grid, weight, cos = (np.concatenate(p) for p in zip(*parts))
    order = np.argsort(pix, kind="stable")
    pix, patch, grid, weight, cos = pix[order], patch[order], grid[order], weight[order], cos[order]
    wsum = np.bincount(pix, weight, h_e * w_e)
    if wsum.min() <= 0:
        raise UsageError(f"patch layout {layout.to_dict()} leaves ERP pixels of a {h_e}x{w_e} grid unseen; "
                         "use more patches or a wider fov")
    area = erp_area_weights(h_e, w_e, np.float64).reshape(-1)
    pairs = []
    for off in range(1, n):
        same = np.flatnonzero(pix[off:] == pix[:-off])
        if same.size == 0:
            break
        pairs.append(np.stack([same, same + off], 1))
    pairs = np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)
    pairs = pairs[np.argsort(pix[pairs[:, 0]], kind="stable")]
    if len(pairs) > MAX_PAIRS:
        pairs = pairs[:: int(np.ceil(len(pairs) / MAX_PAIRS))]
    pair_w = np.sqrt(weight[pairs[:, 0]] * weight[pairs[:, 1]]) * area[pix[pairs[:, 0]]]
    return FusionTable(hw=(h_e, w_e), n_patches=n, pix=pix.astype(np.int64), patch=patch.astype(np.int64),
                       grid=grid.astype(np.float32), weight=weight.astype(np.float32), cos=cos,
                       wsum=wsum.astype(np.float32), pairs=pairs.astype(np.int64), pair_w=pair_w)


def solve_alignment(table: FusionTable, d: np.ndarray, ok: np.ndarray, kind: str,
                    shift_prior: float = 1e-2) -> tuple[np.ndarray, np.ndarray]:
    """Per-patch scale ``s`` ``(N,)`` and shift ``t`` ``(N,)`` aligning relative depth over the overlaps.

    ``d`` ``(M,)`` the teacher's values at the table's entries (normalised to a median near 1),
    ``ok`` ``(M,)`` their validity. With ``f = 1/cos`` (``relative``: ``(s d + t) / cos`` is range)
    or ``f = cos`` (``inverse-relative``: ``cos (s d + t)`` is inverse range), one weighted
    least-squares solve minimises ``sum pair_w^2 (f_i (s_n d_i + t_n) - f_j (s_m d_j + t_m))^2``
    over entry pairs seeing the same pixel, with the gauge ``mean(s) = 1`` (hard), a weak pull
    of ``mean(t)`` to 0 (``shift_prior``, relative to the data's weight: the common shift is
    only weakly fixed by the ``cos`` factors) and a tiny ridge towards ``s = 1, t = 0`` for
    patches without valid overlaps.
    """
    n = table.n_patches
    i, j = table.pairs[:, 0], table.pairs[:, 1]
    keep = ok[i] & ok[j]
    i, j, pw = i[keep], j[keep], table.pair_w[keep]
    f = 1.0 / table.cos if kind == "relative" else table.cos
    ni, nj = table.patch[i], table.patch[j]
    rows = np.arange(i.size)
    a = np.zeros((i.size + 2 + 2 * n, 2 * n))
    a[rows, ni] += pw * f[i] * d[i]
    a[rows, n + ni] += pw * f[i]
    a[rows, nj] -= pw * f[j] * d[j]
    a[rows, n + nj] -= pw * f[j]
    rhs = np.zeros(a.shape[0])
    data = float(np.sqrt((pw ** 2).sum())) or 1.0
    g = i.size
    a[g, :n], rhs[g] = 100.0 * data / n, 100.0 * data            # mean(s) = 1
    a[g + 1, n:] = shift_prior * data / n                            # mean(t) ~ 0
    ridge = 1e-6 * data
    a[g + 2 + np.arange(2 * n), np.arange(2 * n)] = ridge
    rhs[g + 2:g + 2 + n] = ridge                                     # s_n ~ 1, t_n ~ 0
    x = np.linalg.lstsq(a, rhs, rcond=None)[0]
    return x[:n], x[n:]
