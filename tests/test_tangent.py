"""Tangent patches: layout coverage, sampling conventions, exact fusion of analytic teachers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from panoedge.distill.tangent import erp_to_patches, fuse_depth, fuse_probs, make_layout, tangent_predict
from panoedge.distill.tangent_layout import fusion_table
from panoedge.errors import UsageError
from panoedge.geometry import PinholeCamera, erp_rays, erp_to_perspective
from panoedge.models.teachers import ClassMap, Teacher, TeacherOutput

SQUARE = make_layout(patch_hw=32)  # the default count and fov on small square patches


def ray_erp(h: int, w: int, b: int = 1) -> torch.Tensor:
    """An ERP image whose RGB encodes its own ray, ``(d + 1) / 2``: ``(B, 3, H, W)``."""
    img = torch.from_numpy((erp_rays(h, w) + 1.0) / 2.0).float().permute(2, 0, 1)
    return img[None].expand(b, -1, -1, -1).contiguous()


def ellipsoid_range(d: np.ndarray) -> np.ndarray:
    """Range to the ellipsoid x^2/9 + y^2/2.25 + z^2/4 = 1 along unit rays ``d`` ``(..., 3)``."""
    return 1.0 / np.sqrt((d[..., 0] / 3.0) ** 2 + (d[..., 1] / 1.5) ** 2 + (d[..., 2] / 2.0) ** 2)


class RayTeacher(Teacher):
    """A perspective 'teacher' that decodes each pixel's ray from the image (see :func:`ray_erp`).

    Classes come from ``classify(rays)``; depth is the exact z-depth of a sphere of ``radius``.
    """

    def __init__(self, layout, classify, radius: float = 3.7):
        self.name, self.input_hw, self.depth_kind = "ray-teacher", layout.patch_hw, "metric"
        self.classify, self.radius, self.fov = classify, radius, layout.fov_deg
        self.classes = ("a", "b", "c")[: classify(np.zeros((1, 3))).shape[-1]]
        self.calls = 0

    def predict(self, images, features=False):
        self.calls += 1
        d = images.permute(0, 2, 3, 1).double().numpy() * 2.0 - 1.0
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        probs = torch.from_numpy(self.classify(d)).permute(0, 3, 1, 2).float()
        cos = PinholeCamera.from_fov(*images.shape[-2:], self.fov).rays()[0][..., 2]
        depth = torch.from_numpy(self.radius * cos).float().expand(images.shape[0], 1, -1, -1)
        return TeacherOutput(probs=probs, classes=self.classes, depth=depth.contiguous(), depth_kind="metric")


def sign_x(d):
    return np.stack([d[..., 0] > 0, d[..., 0] <= 0], -1).astype(np.float64)


def caps(d):  # north cap, band, south cap: boundaries at +-30 deg, seam and poles inside regions
    return np.stack([d[..., 1] < -0.5, np.abs(d[..., 1]) <= 0.5, d[..., 1] > 0.5], -1).astype(np.float64)


def test_default_layout_sees_every_erp_pixel_at_least_twice():
    for layout in (make_layout(), SQUARE):
        c, r = layout.centres(), layout.rotations()
        assert c.shape == (20, 3) and r.shape == (20, 3, 3)
        assert np.allclose(np.linalg.norm(c, axis=1), 1) and np.allclose(r[:, :, 2], c)
        assert np.allclose(np.linalg.det(r), 1)
        for hw in ((32, 64), (64, 128)):
            t = fusion_table(layout, hw)
            assert np.bincount(t.pix, minlength=hw[0] * hw[1]).min() >= 2


def test_sparse_layout_is_refused_with_the_numbers():
    with pytest.raises(UsageError, match=r"6 patches.*only [01] patch.*n_patches=\d+"):
        make_layout(n_patches=6, fov_deg=60, patch_hw=32)
    with pytest.raises(UsageError, match="fov"):
        make_layout(fov_deg=180)


def test_patches_match_the_numpy_perspective_view(smooth_erp):
    erp = torch.from_numpy(smooth_erp).permute(2, 0, 1)[None]
    patches = erp_to_patches(torch.cat([erp, erp.flip(1)]), SQUARE)
    assert patches.shape == (40, 3, 32, 32)
    c = SQUARE.centres()
    for n in (0, 7, 19):  # north, mid, south
        yaw, pitch = np.rad2deg(np.arctan2(c[n, 0], c[n, 2])), np.rad2deg(-np.arcsin(c[n, 1]))
        ref = erp_to_perspective(smooth_erp, SQUARE.fov_deg, yaw, pitch, (32, 32))
        assert np.abs(patches[n].permute(1, 2, 0).numpy() - ref).max() < 0.01
        assert torch.equal(patches[20 + n], patches[n].flip(0))  # image 1 follows image 0


@pytest.mark.parametrize("classify", [sign_x, caps], ids=["sign_x", "caps"])
def test_fused_probs_reproduce_a_function_of_the_ray(classify):
    teacher = RayTeacher(SQUARE, classify)
    out = tangent_predict(teacher, ray_erp(32, 64, b=2), SQUARE)
    assert out.probs.shape == (2, len(teacher.classes), 32, 64) and out.classes == teacher.classes
    assert torch.allclose(out.probs.sum(1), torch.ones(2, 32, 64), atol=1e-5)
    d = erp_rays(32, 64)
    truth = classify(d)
    margin = np.abs(d[..., 0]) if classify is sign_x else np.abs(np.abs(d[..., 1]) - 0.5)
    away = margin > 0.2
    if classify is caps:
        assert away[:, 0].sum() > 16 and away[0].all() and away[-1].all()  # the seam and the poles are checked
    got = out.probs[0].permute(1, 2, 0).numpy()
    assert np.abs(got[away] - truth[away]).max() < 1e-5
    assert teacher.calls == 4  # one image at a time: 20 patches in calls of 16 and 4, twice


def test_metric_depth_of_a_sphere_is_its_radius_everywhere():
    teacher = RayTeacher(SQUARE, sign_x, radius=3.7)
    out = tangent_predict(teacher, ray_erp(32, 64), SQUARE)
    assert out.depth_kind == "metric" and out.depth.shape == (1, 1, 32, 64)
    assert torch.allclose(out.depth, torch.full_like(out.depth, 3.7), rtol=1e-3)


def test_class_map_sums_teacher_classes_into_student_classes():
    teacher = RayTeacher(SQUARE, caps)
    cmap = ClassMap(("a", "b", "c"), ("cap", "band"), (0, 1, 0))
    out = tangent_predict(teacher, ray_erp(32, 64), SQUARE, cmap)
    assert out.classes == ("cap", "band") and out.probs.shape == (1, 2, 32, 64)
    assert torch.allclose(out.probs.sum(1), torch.ones(1, 32, 64), atol=1e-5)


@pytest.mark.parametrize("kind", ["relative", "inverse-relative"])
def test_relative_depth_is_aligned_to_one_global_affine(kind):
    layout = SQUARE
    cam = layout.camera().rays()[0]
    rng = np.random.default_rng(3)
    patches = []
    for R in layout.rotations():
        z = ellipsoid_range(cam @ R.T) * cam[..., 2]
        true = z if kind == "relative" else 1.0 / z
        patches.append(rng.uniform(0.5, 2.0) * true + rng.uniform(-0.3, 0.3) * true.mean())
    fused = fuse_depth(torch.from_numpy(np.stack(patches)[:, None]).float(), layout, (32, 64), kind)[0, 0].numpy()
    gt = ellipsoid_range(erp_rays(32, 64))
    assert (fused > 0).all() and abs(np.median(fused) - 1.0) < 1e-3
    a = np.stack([fused.ravel(), np.ones(fused.size)], 1)
    fit = (a @ np.linalg.lstsq(a, gt.ravel(), rcond=None)[0]).reshape(gt.shape)
    assert np.abs(fit / gt - 1).max() < 0.01


def test_bad_shapes_and_kinds_are_usage_errors():
    with pytest.raises(UsageError, match=r"\(B \* 20, C, 32, 32\)"):
        fuse_probs(torch.rand(19, 2, 32, 32), SQUARE, (32, 64))
    with pytest.raises(UsageError, match="depth kind"):
        fuse_depth(torch.rand(20, 1, 32, 32), SQUARE, (32, 64), "disparity")
    with pytest.raises(UsageError, match="W == 2"):
        fuse_probs(torch.rand(20, 2, 32, 32), SQUARE, (32, 32))
