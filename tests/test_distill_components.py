"""Distillation losses and refinement components on tiny, exact inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from panoedge.errors import ConfigError


def _rows(h: int) -> torch.Tensor:
    from panoedge.geometry.torch_ops import erp_area_weights

    return erp_area_weights(h, 2 * h)[:, 0]


# --- losses --------------------------------------------------------------------------------

def test_log_l1_depth_is_area_weighted():
    from panoedge.distill.losses import log_l1_depth

    h, w = 4, 8
    v = torch.tensor([0.8, 0.1, -0.2, 0.5])  # per-row log error
    target = torch.full((1, 1, h, w), 3.0)
    pred = target * torch.exp(v)[None, None, :, None]
    a = _rows(h)
    want_area = float((a * v.abs()).sum() / a.sum())
    assert log_l1_depth(pred, target).item() == pytest.approx(want_area, rel=1e-5)
    assert log_l1_depth(pred, target, area=False).item() == pytest.approx(float(v.abs().mean()), rel=1e-5)
    assert want_area != pytest.approx(float(v.abs().mean()), rel=1e-2)  # the weighting matters here
    target[..., 0, :] = 0.0  # invalid pixels do not count
    want = float((a[1:] * v[1:].abs()).sum() / a[1:].sum())
    assert log_l1_depth(pred, target).item() == pytest.approx(want, rel=1e-5)


def test_cross_entropies_weight_and_ignore():
    from panoedge.distill.losses import hard_ce, soft_ce

    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 8, requires_grad=True)
    labels = torch.randint(0, 3, (2, 4, 8))
    onehot = torch.nn.functional.one_hot(labels, 3).permute(0, 3, 1, 2).float()
    assert soft_ce(logits, onehot).item() == pytest.approx(hard_ce(logits, labels).item(), rel=1e-6)
    ignored = labels.clone()
    ignored[:, 0] = 255
    w = torch.ones(2, 4, 8)
    w[:, 0] = 0
    assert hard_ce(logits, ignored).item() == pytest.approx(soft_ce(logits, onehot, w).item(), rel=1e-6)
    per = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    a = _rows(4)[None, :, None].expand(2, 4, 8)
    assert hard_ce(logits, labels).item() == pytest.approx(float((per * a).detach().sum() / a.sum()), rel=1e-5)
    hard_ce(logits, ignored).backward()
    assert logits.grad[:, :, 0].abs().max() == 0 and logits.grad[:, :, 1:].abs().max() > 0


def test_ssi_depth_invariant_to_scale_and_shift_of_prediction():
    from panoedge.distill.losses import depth_loss, ssi_depth

    torch.manual_seed(1)
    target = torch.rand(2, 1, 8, 16) * 5 + 1
    pred = torch.rand(2, 1, 8, 16) * 3 + 0.5
    base = ssi_depth(pred, target)
    assert base.item() > 0.05
    for a, b in ((2.0, 0.0), (0.3, 1.7), (5.0, -0.4)):
        assert ssi_depth(a * pred + b, target).item() == pytest.approx(base.item(), rel=1e-4)
    assert ssi_depth(0.5 * target + 3.0, target).item() < 1e-5  # an affine copy of the target scores zero
    inv = ssi_depth(4.0 * target, 1.0 / target, inverse=True)  # disparity targets: 1 / pred is aligned
    assert inv.item() < 1e-5
    assert depth_loss("auto", pred, target, depth_kind="relative").item() == pytest.approx(base.item())
    assert depth_loss("auto", pred, target, depth_kind="metric").item() != pytest.approx(base.item())


# --- PiXL ----------------------------------------------------------------------------------

def test_pixl_partition_is_the_entropy_quantile():
    from panoedge.distill.pixl import entropy, partition
    from panoedge.distill.losses import pixel_weights

    torch.manual_seed(2)
    probs = torch.softmax(torch.randn(2, 5, 16, 32) * 3, 1)
    for drift in (0.2, 0.5):
        joint = partition(probs, drift)
        wts = pixel_weights((2, 16, 32), "cpu")
        ent = entropy(probs)
        for i in range(2):
            frac = float((wts[i] * joint[i]).sum() / wts[i].sum())
            assert abs(frac - (1 - drift)) <= float(wts[i].max() / wts[i].sum()) + 1e-6
            assert ent[i][joint[i]].max() < ent[i][~joint[i]].min()


def test_pixl_loss_moves_drift_pixels_only():
    from panoedge.distill.pixl import partition, pixl_loss

    torch.manual_seed(3)
    b, c, h, w, k = 1, 8, 8, 16, 3
    labels = torch.randint(0, k, (b, h, w))
    confident = torch.rand(b, h, w) < 0.7
    logits = torch.nn.functional.one_hot(labels, k).permute(0, 3, 1, 2).float() * torch.where(confident, 6.0, 0.2)[:, None]
    probs = torch.softmax(logits, 1)
    feats = torch.randn(b, c, h, w, requires_grad=True)
    loss = pixl_loss(feats, probs, labels, drift=0.3, tau=0.1)
    loss.backward()
    joint = partition(probs, 0.3)
    g = feats.grad.abs().sum(1)
    assert loss.item() > 0 and g[~joint].max() > 0
    assert g[joint].max() == 0  # prototypes are built from joint pixels with the gradient stopped


# --- BiSMAP --------------------------------------------------------------------------------

def test_bismap_accepts_in_distribution_rejects_outliers_relabels_confusions():
    from panoedge.distill.bismap import decide, fit_class_gmms

    g = torch.Generator().manual_seed(4)
    d = 6
    mu = torch.zeros(2, d)
    mu[1, 0] = 10.0
    scale = torch.tensor([1.0, 0.2, 0.2, 0.2, 0.2, 0.2])  # anisotropic
    x = torch.cat([mu[c] + torch.randn(500, d, generator=g) * scale for c in (0, 1)])
    y = torch.cat([torch.zeros(500, dtype=torch.long), torch.ones(500, dtype=torch.long)])
    model = fit_class_gmms(x, y, torch.ones(len(x)), 2, n_components=2, quantile=0.02, gen=g)
    fresh = torch.cat([mu[c] + torch.randn(100, d, generator=g) * scale for c in (0, 1)])
    fresh_y = torch.cat([torch.zeros(100, dtype=torch.long), torch.ones(100, dtype=torch.long)])
    action, new = decide(model.log_likelihood(fresh), fresh_y, model.thresholds)
    assert float((action == 0).float().mean()) > 0.9
    outliers = torch.randn(50, d, generator=g) * 0.2 + torch.tensor([5.0, 0, 0, 8.0, 0, 0])
    action, _ = decide(model.log_likelihood(outliers), torch.zeros(50, dtype=torch.long), model.thresholds)
    assert bool((action == 2).all())
    swapped = mu[1] + torch.randn(50, d, generator=g) * scale  # class-1 features labelled 0
    action, new = decide(model.log_likelihood(swapped), torch.zeros(50, dtype=torch.long), model.thresholds)
    assert float((action == 1).float().mean()) > 0.9 and bool((new[action == 1] == 1).all())


# --- RLCC and clustering -------------------------------------------------------------------

def test_rlcc_momentum_and_consensus_recover_a_permutation():
    from panoedge.distill import rlcc

    new, prev = torch.tensor([[1.0], [0.0]]), torch.tensor([[0.2], [0.8]])
    out = rlcc.ensemble(new, prev, 0.3)
    assert torch.allclose(out, torch.tensor([[0.3 * 1.0 + 0.7 * 0.2], [0.7 * 0.8]]))
    g = torch.Generator().manual_seed(5)
    k = 6
    prev_ids = torch.randint(0, k, (40, 30), generator=g)
    perm_true = torch.randperm(k, generator=g)
    cur_ids = perm_true[prev_ids]
    noise = torch.rand(prev_ids.shape, generator=g) < 0.1
    cur_ids = torch.where(noise, torch.randint(0, k, prev_ids.shape, generator=g), cur_ids)
    c = rlcc.iou_consensus(prev_ids, cur_ids, k, k)
    assert c.shape == (k, k) and float(c.max()) <= 1.0
    perm = rlcc.match_clusters(c)
    assert np.array_equal(perm[perm_true.numpy()], np.arange(k))  # current id perm_true[i] -> previous id i
    soft = torch.nn.functional.one_hot(cur_ids, k).permute(2, 0, 1).float()
    back = rlcc.relabel(soft, perm).argmax(0)
    assert float((back == prev_ids).float().mean()) > 0.85
    c_hat = rlcc.normalize_rows(c)
    assert torch.allclose(c_hat.sum(1), torch.ones(k))
    prop = rlcc.propagate(torch.nn.functional.one_hot(prev_ids, k).permute(2, 0, 1).float(), c_hat)
    assert torch.allclose(prop.sum(0), torch.ones(40, 30), atol=1e-5)


def test_cluster_kmeans_and_matched_miou():
    from panoedge.distill.cluster import cluster_miou, kmeans

    g = torch.Generator().manual_seed(6)
    centres = torch.eye(4) * 5
    x = torch.cat([centres[i] + 0.3 * torch.randn(50, 4, generator=g) for i in range(4)])
    c = kmeans(x, 4, gen=g)
    assign = (torch.nn.functional.normalize(x, dim=1) @ c.t()).argmax(1)
    truth = torch.arange(4).repeat_interleave(50)
    assert cluster_miou(assign.numpy(), truth.numpy(), 4, 4) == pytest.approx(1.0)
    assert cluster_miou(((truth + 1) % 4).numpy(), truth.numpy(), 4, 4) == pytest.approx(1.0)


# --- DepthG --------------------------------------------------------------------------------

def test_fps_spreads_points_and_depthg_gradient_flows():
    from panoedge.distill.depthg import depthg_loss, farthest_point_sample

    g = torch.Generator().manual_seed(7)
    blob = torch.randn(200, 3, generator=g) * 0.05
    corners = torch.tensor([[4.0, 0, 0], [-4.0, 0, 0], [0, 4.0, 0], [0, 0, -4.0]])
    pts = torch.cat([blob, corners])
    idx = farthest_point_sample(pts, 5)
    assert set(range(200, 204)) <= set(idx.tolist())
    d_fps = torch.pdist(pts[idx]).min()
    d_rand = torch.pdist(pts[torch.randperm(len(pts), generator=g)[:5]]).min()
    assert d_fps > d_rand
    feats = torch.randn(2, 8, 8, 16, requires_grad=True)
    depth = torch.rand(2, 8, 16) * 4 + 1
    loss = depthg_loss(feats, depth, n_points=16)
    loss.backward()
    assert torch.isfinite(loss) and feats.grad.abs().sum() > 0


def _fps_reference(pts, n, ok):
    """Farthest point sampling written plainly, one point at a time, for one image."""
    c = pts[ok].mean(0)
    chosen = [int(((pts - c) ** 2).sum(1).masked_fill(~ok, -1.0).argmax())]
    while len(chosen) < n:
        d = torch.stack([((pts - pts[j]) ** 2).sum(1) for j in chosen]).min(0).values.masked_fill(~ok, -1.0)
        chosen.append(int(d.argmax()))
    return torch.tensor(chosen)


def test_batched_depthg_matches_one_image_at_a_time():
    from panoedge.distill.depthg import depth_correlation, depthg_loss, erp_points, farthest_point_sample_batch
    from panoedge.geometry.torch_ops import erp_area_weights

    g = torch.Generator().manual_seed(3)
    b, c, h, w, n = 4, 6, 8, 16, 12
    depth = torch.rand(b, h, w, generator=g) * 4 + 0.5
    depth[1, :3] = 0.0  # invalid rows
    depth[2] = 0.0
    depth[2, 0, :5] = 2.0  # fewer valid points than n: sampled on its own
    depth[3, 4, 4] = float("nan")
    feats = torch.randn(b, c, h, w, generator=g, requires_grad=True)
    ok = torch.isfinite(depth) & (depth > 0)
    pts = erp_points(torch.where(ok, depth, torch.zeros_like(depth))).reshape(b, -1, 3)
    full = [0, 1, 3]
    idx = farthest_point_sample_batch(pts[full], n, ok.reshape(b, -1)[full])
    for row, i in enumerate(full):
        assert torch.equal(idx[row], _fps_reference(pts[i], n, ok[i].reshape(-1)))
    area = erp_area_weights(h, w).expand(h, w).reshape(-1)
    f = feats.reshape(b, c, -1)
    ref = []
    for i in range(b):
        m = ok[i].reshape(-1)
        j = _fps_reference(pts[i], min(n, int(m.sum())), m)
        fi = torch.nn.functional.normalize(f[i][:, j] - f[i][:, j].mean(1, keepdim=True), dim=0)
        dc, wab = depth_correlation(pts[i][j]), area[j][:, None] * area[j][None, :]
        bias = (wab * dc).sum() / wab.sum()
        ref.append(-((wab * (dc - bias) * (fi.t() @ fi).clamp_min(0)).sum() / wab.sum()))
    ref = torch.stack(ref).mean()
    got = depthg_loss(feats, depth, n_points=n)
    assert torch.allclose(got, ref, atol=1e-6)
    g1, = torch.autograd.grad(got, feats)
    g2, = torch.autograd.grad(ref, feats)
    assert torch.allclose(g1, g2, atol=1e-7)


# --- spherical consistency -----------------------------------------------------------------

def test_consistency_zero_for_an_equivariant_identity_model():
    from panoedge.distill.consistency import consistency_loss, random_transforms

    torch.manual_seed(8)
    x = torch.randn(3, 4, 16, 32)

    def model(img):
        return {"seg": img, "depth": torch.exp(img[:, :1])}

    T = random_transforms(3, 30.0, 1.6, torch.Generator().manual_seed(9))
    assert not torch.allclose(T(x), x)
    loss = consistency_loss(model(T(x)), model(x), T)
    assert loss.item() < 1e-5

    def not_equivariant(img):
        return {"seg": 4 * img * torch.linspace(-1, 1, img.shape[-2])[:, None], "depth": torch.exp(img[:, :1])}

    bad = consistency_loss(not_equivariant(T(x)), not_equivariant(x), T).item()
    assert bad > 1e-2 and bad > 1000 * loss.item()


def test_rotation_transform_is_an_exact_yaw_roll():
    from panoedge.distill.consistency import SphereTransform
    from panoedge.geometry.torch_ops import rotation_from_ypr

    x = torch.randn(1, 2, 8, 16)
    yaw = torch.tensor([2 * math.pi / 16 * 3])
    R = rotation_from_ypr(yaw, torch.zeros(1), torch.zeros(1))
    T = SphereTransform(R, torch.ones(1), torch.eye(3)[None])
    assert torch.allclose(T(x), torch.roll(x, -3, dims=-1), atol=1e-5)


# --- config --------------------------------------------------------------------------------

def test_balance_divides_the_teachers_own_prior_out():
    from panoedge.distill.balance import balance_labels, class_prior

    # 3 images of 2x4 pixels: class 0 is the confident majority, class 1 is second everywhere
    p = torch.tensor([0.7, 0.3]).view(1, 2, 1, 1).repeat(3, 1, 2, 4)
    p[0, :, 0, 0] = torch.tensor([0.1, 0.9])
    area = torch.tensor([[1.0], [3.0]]).expand(2, 4)
    weight = torch.ones(3, 2, 4)
    weight[1] = 0.0  # unweighted pixels do not count towards the prior
    prior = class_prior(p, weight, area)
    want0 = float(((p[:, 0] * weight * area).sum()) / (weight * area).sum())
    assert prior.tolist() == pytest.approx([want0, 1 - want0], abs=1e-6)
    assert torch.equal(balance_labels(p, prior, 0.0), p / p.sum(1, keepdim=True))
    q = balance_labels(p, prior, 1.0)
    assert torch.allclose(q.sum(1), torch.ones(3, 2, 4))
    # divided by a prior of ~(0.68, 0.32), 0.7 vs 0.3 is a near tie; the rare class gains mass
    assert float(q[:, 1].mean()) > float(p[:, 1].mean())
    half = balance_labels(p, prior, 0.5)
    assert float(p[:, 1].mean()) < float(half[:, 1].mean()) < float(q[:, 1].mean())
    with pytest.raises(ValueError, match="tau"):
        balance_labels(p, prior, 1.5)
    with pytest.raises(ValueError, match="prior"):
        balance_labels(p, prior[:1], 0.5)


def test_sharpen_keeps_the_arg_max_and_moves_mass_to_it():
    from panoedge.distill.balance import sharpen

    p = torch.tensor([[0.40, 0.35, 0.25], [0.2, 0.2, 0.6]]).t().reshape(1, 3, 1, 2).repeat(2, 1, 3, 1).half()
    assert torch.allclose(sharpen(p, 1.0).float(), p.float(), atol=1e-3)
    q = sharpen(p, 0.5)
    assert q.dtype == p.dtype
    assert torch.allclose(q.float().sum(1), torch.ones(2, 3, 2), atol=1e-3)
    assert torch.equal(q.argmax(1), p.argmax(1))
    # squared then renormalised: 0.4^2 / (0.4^2 + 0.35^2 + 0.25^2)
    assert float(q[0, 0, 0, 0]) == pytest.approx(0.16 / (0.16 + 0.1225 + 0.0625), abs=2e-3)
    assert bool((sharpen(p, 2.0).float().max(1).values < p.float().max(1).values).all())
    with pytest.raises(ValueError, match="temperature"):
        sharpen(p, 0.0)


def _cylinder_room(h: int = 32, floor_m: float = 1.5, ceiling_m: float = 1.2, radius_m: float = 3.0):
    """Range and class ids (0 wall, 1 floor, 2 ceiling) of a round room around an ERP camera."""
    lat = (0.5 - (torch.arange(h) + 0.5) / h) * math.pi
    r_wall = radius_m / torch.cos(lat)
    r_floor = torch.where(lat < 0, floor_m / torch.sin(-lat).clamp_min(1e-6), torch.full_like(lat, 1e9))
    r_ceil = torch.where(lat > 0, ceiling_m / torch.sin(lat).clamp_min(1e-6), torch.full_like(lat, 1e9))
    r = torch.stack([r_wall, r_floor, r_ceil]).min(0).values
    cls = torch.stack([r_wall, r_floor, r_ceil]).argmin(0)
    return lat, r.view(h, 1).expand(h, 2 * h).clone(), cls.view(h, 1).expand(h, 2 * h).clone()


def test_plane_check_moves_off_plane_floor_and_ceiling_labels_to_the_next_choice():
    from panoedge.distill.planes import plane_groups, refine_planes

    names = ["wall", "floor", "ceiling", "table"]
    assert plane_groups(names) == [(1, [1]), (-1, [2])]
    assert plane_groups(["wall", "Road", "sidewalk", "sky"]) == [(1, [1, 2])]
    h = 32
    lat, rng, cls = _cylinder_room(h)
    probs = torch.full((1, 4, h, 2 * h), 0.05)
    probs[0].scatter_(0, cls[None], 0.85)
    # a table top 0.75 m below the camera that the teacher calls floor (the table second)
    rows = [v for v in range(h) if -0.9 < float(lat[v]) < -0.5]
    tab = (slice(None), slice(None), rows, slice(0, 8))
    rng[rows, 0:8] = 0.75 / torch.sin(-lat[rows]).view(-1, 1)
    probs[tab] = torch.tensor([0.03, 0.6, 0.02, 0.35]).view(1, 4, 1, 1)
    # the upper wall, well under the ceiling, called ceiling (the wall second)
    top = [v for v in range(h) if int(cls[v, 0]) == 0 and 0.05 < float(lat[v]) < 0.25]
    probs[0, :, top, 20:30] = torch.tensor([0.35, 0.02, 0.6, 0.03]).view(4, 1, 1)
    out, stats = refine_planes(probs, rng[None], names)
    lab = out[0].argmax(0)
    assert (lab[rows, 0:8] == 3).all()  # off the floor plane: the table
    assert (lab[top, 20:30] == 0).all()  # below the ceiling plane: the wall
    keep = torch.ones(h, 2 * h, dtype=torch.bool)
    keep[rows, 0:8] = False
    keep[top, 20:30] = False
    assert torch.equal(lab[keep], cls[keep])  # every pixel on its plane keeps its label
    assert torch.allclose(out.sum(1), torch.ones(1, h, 2 * h), atol=1e-5)
    assert stats["planes_found"] == {"ground": 1, "overhead": 1} and stats["moved"]["ground"] > 0
    # a global depth scale changes nothing (relative-depth teachers), unknown depth leaves labels as they are
    assert torch.allclose(refine_planes(probs, 3.0 * rng[None], names)[0], out, atol=1e-5)
    blind = rng.clone()
    blind[rows, 0:8] = 0.0
    assert torch.equal(refine_planes(probs, blind[None], names)[0][0][:, rows, 0:8], probs[0][:, rows, 0:8])
    with pytest.raises(ValueError, match="depth of shape"):
        refine_planes(probs, rng, names)


def test_config_precedence_and_errors(tmp_path):
    from panoedge.distill.config import DistillConfig, resolve_config

    f = tmp_path / "c.yaml"
    f.write_text("steps: 40\nlr: 0.01\npixl: false\nerp_hw: 32x64\n")
    cfg = resolve_config(f, steps=7)
    assert (cfg.steps, cfg.lr, cfg.pixl, cfg.erp_hw) == (7, 0.01, False, (32, 64))
    assert resolve_config().steps == DistillConfig().steps
    f.write_text("stepz: 4\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: stepz: unknown key"):
        resolve_config(f)
    f.write_text("pixl_drift: 1.5\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: pixl_drift: 1.5: expected a number in \[0.01, 0.99\]"):
        resolve_config(f)
    with pytest.raises(ConfigError, match="erp_hw"):
        resolve_config(erp_hw=(32, 48))
    with pytest.raises(ConfigError, match=r"balance_tau: 2: expected a number in \[0.0, 1.0\]"):
        resolve_config(balance_tau=2)


def test_the_accuracy_example_config_resolves_to_the_measured_run():
    from pathlib import Path

    from panoedge.distill.config import DistillConfig, resolve_config

    path = Path(__file__).resolve().parents[1] / "examples" / "distill-accurate.yaml"
    cfg, default = resolve_config(path), DistillConfig().validate()
    changed = {k for k, v in cfg.to_dict().items() if v != default.to_dict()[k]}
    assert cfg.steps == 3600 and cfg.pseudo_fusion == "tangent+erp" and cfg.consistency and not cfg.bismap
    assert changed <= {"steps", "pseudo_fusion", "consistency"}  # same data, teacher and student as the default

