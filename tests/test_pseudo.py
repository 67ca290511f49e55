"""Pseudo labels: built once, reused without the teacher, resumed after an interruption, sharded by rank."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import yaml

from panoedge.data import DatasetFolder, write_meta
from panoedge.distill import pseudo
from panoedge.distill.pseudo import PseudoLabelSpec, build_pseudo_labels, pseudo_key
from panoedge.errors import DataError, UsageError
from panoedge.io import write_rgb

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def make_dataset(root, n: int = 3, size=(32, 64), seed: int = 5) -> DatasetFolder:
    """A tiny synthetic indoor dataset folder (rgb, depth, semantic)."""
    from panoedge.data.synth_folder import generate_dataset
    from panoedge.synth.dataset import SynthSpec

    return DatasetFolder(generate_dataset(root, SynthSpec(n=n, seed=seed, size=tuple(size)), progress=False).path)


def make_teacher(folder, classes, input_hw=(32, 32)) -> str:
    """An untrained, tiny builtin teacher folder; returns its spec."""
    from panoedge.models.teacher_net import create_teacher_net
    from panoedge.models.teachers import save_teacher_folder

    torch.manual_seed(0)
    model = create_teacher_net("teacher-large", len(classes), width_mult=0.125)
    save_teacher_folder(folder, model, classes, input_hw, *IMAGENET, arch_options={"width_mult": 0.125})
    return f"builtin:{folder}"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("pseudo")
    ds = make_dataset(root / "data")
    return ds, make_teacher(root / "teacher", ds.classes)


@pytest.fixture
def spy(monkeypatch):
    """Counts teacher runs (and the stems they label); ``spy.fail_at = k`` interrupts the k-th run."""

    class Spy:
        calls, stems, fail_at = 0, [], None

    real_predict, real_load = pseudo.tangent_predict, pseudo._load_erp

    def predict(*args, **kw):
        Spy.calls += 1
        if Spy.fail_at == Spy.calls:
            raise RuntimeError("interrupted")
        return real_predict(*args, **kw)

    def load(data, stem, erp_hw):
        Spy.stems.append(stem)
        return real_load(data, stem, erp_hw)

    monkeypatch.setattr(pseudo, "tangent_predict", predict)
    monkeypatch.setattr(pseudo, "_load_erp", load)
    Spy.stems = []
    return Spy


def test_built_once_then_reused_without_the_teacher(world, spy, monkeypatch):
    ds, teacher = world
    spec = PseudoLabelSpec(teacher=teacher, shard_size=2)
    labels = build_pseudo_labels(ds, teacher, spec, ds.classes, progress=False)
    assert spy.calls == 3 and labels.complete and len(labels) == 3
    assert sorted(p.name for p in labels.root.glob("shard_*.npz")) == ["shard_00000.npz", "shard_00001.npz"]
    assert (labels.root / "index.json").is_file() and labels.classes == tuple(ds.classes)
    one = labels.load(ds.stems[2])
    assert one["probs"].shape == (11, 32, 64) and one["probs"].dtype == np.float32
    assert np.allclose(one["probs"].sum(0), 1, atol=2e-3)
    assert one["depth"].shape == (32, 64) and (one["depth"] > 0).all() and one["depth_kind"] == "metric"
    assert one["conf"].shape == (32, 64) and 0 < one["conf"].min() <= one["conf"].max() <= 1.001

    from panoedge.models.teachers import ResolvedTeacher

    monkeypatch.setattr(ResolvedTeacher, "load", lambda *a, **k: pytest.fail("teacher loaded for a cached set"))
    again = build_pseudo_labels(ds, None, spec, ds.classes, progress=False)
    assert spy.calls == 3 and again.root == labels.root
    assert pseudo_key(ds, replace(spec, fov_deg=110.0), ds.classes) != pseudo_key(ds, spec, ds.classes)
    assert pseudo_key(ds, spec, list(reversed(ds.classes))) != pseudo_key(ds, spec, ds.classes)


def test_an_interrupted_build_resumes_where_it_stopped(world, spy):
    ds, teacher = world
    spec = PseudoLabelSpec(teacher=teacher, shard_size=1)
    spy.fail_at = 3
    with pytest.raises(RuntimeError, match="interrupted"):
        build_pseudo_labels(ds, teacher, spec, ds.classes, progress=False)
    part = pseudo.PseudoLabelSet(pseudo.cache_dir("pseudo", pseudo_key(ds, spec, ds.classes)))
    assert not part.complete and part.missing_shards() == [2]
    spy.fail_at = None
    labels = build_pseudo_labels(ds, teacher, spec, ds.classes, progress=False)
    assert spy.calls == 4 and labels.complete and spy.stems == [*ds.stems, ds.stems[2]]
    assert all(labels.load(s)["probs"].shape == (11, 32, 64) for s in ds.stems)


def test_ranks_build_disjoint_shards_that_complete_together(world, spy):
    ds, teacher = world
    spec = PseudoLabelSpec(teacher=teacher, shard_size=1)
    r0 = build_pseudo_labels(ds, teacher, spec, ds.classes, rank=0, world_size=2, progress=False)
    assert spy.stems == [ds.stems[0], ds.stems[2]] and not r0.complete and r0.missing_shards() == [1]
    with pytest.raises(DataError, match="not built yet"):
        r0.load(ds.stems[1])
    r1 = build_pseudo_labels(ds, teacher, spec, ds.classes, rank=1, world_size=2, progress=False)
    assert spy.stems[2:] == [ds.stems[1]] and r1.complete and r1.root == r0.root
    build_pseudo_labels(ds, teacher, spec, ds.classes, rank=0, world_size=2, progress=False)
    assert spy.calls == 3
    with pytest.raises(UsageError, match="rank 2 of world_size 2"):
        build_pseudo_labels(ds, teacher, spec, ds.classes, rank=2, world_size=2, progress=False)


def test_class_maps_and_bad_input_fail_before_any_teacher_run(world, spy, tmp_path):
    ds, teacher = world
    spec = PseudoLabelSpec(teacher=teacher)
    with pytest.raises(UsageError, match="not the student's.*class map"):
        build_pseudo_labels(ds, teacher, spec, ["road", "sky"], progress=False)
    cmap = tmp_path / "map.yaml"
    cmap.write_text(yaml.safe_dump({"schema": "panoedge.classmap/1", "target_family": "test",
                                    "map": {"wall": "flat", "floor": "flat", "chair": "thing"}}))
    labels = build_pseudo_labels(ds, teacher, replace(spec, class_map=str(cmap)), ["flat", "thing"], progress=False)
    probs = labels.load(ds.stems[0])["probs"]
    assert labels.classes == ("flat", "thing") and probs.shape == (2, 32, 64) and probs.sum(0).max() <= 1.001
    assert spy.calls == 3
    with pytest.raises(UsageError, match="differs from the pseudo-label spec"):
        build_pseudo_labels(ds, "builtin:/elsewhere", spec, ds.classes, progress=False)

    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        build_pseudo_labels(DatasetFolder(tmp_path / "empty"), teacher, spec, ds.classes, progress=False)
    bad = tmp_path / "bad"
    write_meta(bad, ds.classes, np.zeros((11, 3)), "test")
    write_rgb(bad / "rgb" / "square.png", np.zeros((40, 60, 3), np.uint8))
    with pytest.raises(UsageError, match=r"square\.png: 60x40 is not an equirectangular"):
        build_pseudo_labels(DatasetFolder(bad), teacher, spec, ds.classes, progress=False)
    assert spy.calls == 3


def test_patches_from_the_sharp_source_fused_at_the_training_size(world, spy):
    """``source_hw`` is where the teacher's patches are sampled, ``erp_hw`` where they are fused:
    the panorama is loaded at the source size, the labels come out at the training size."""
    ds, teacher = world
    spec = PseudoLabelSpec(teacher=teacher, shard_size=4, source_hw=(32, 64), erp_hw=(16, 32))
    assert pseudo_key(ds, spec, ds.classes) != pseudo_key(ds, replace(spec, source_hw=None), ds.classes)
    labels = build_pseudo_labels(ds, teacher, spec, ds.classes, progress=False)
    one = labels.load(ds.stems[0])
    assert one["probs"].shape == (11, 16, 32) and one["depth"].shape == (16, 32)
    assert np.allclose(one["probs"].sum(0), 1, atol=2e-3)
    with pytest.raises(UsageError, match="source size"):
        PseudoLabelSpec(teacher=teacher, source_hw=(32, 48))


def test_projection_fusion_mixes_the_whole_image_in_by_latitude(world):
    """``tangent+erp``: patch probabilities (class 1 here) and the whole-image answer (class 0)
    mix with weight ``cos(latitude)`` for the whole image: half and half at the equator, the
    patches' alone at the poles; the mix is still a distribution."""
    from panoedge.models.teachers import TeacherOutput

    class WholeSaysZero:
        def predict(self, x):
            p = torch.zeros(1, 3, *x.shape[-2:])
            p[:, 0] = 1.0
            return TeacherOutput(probs=p)

    h, w = 32, 64
    tangent = torch.zeros(3, h, w)
    tangent[1] = 1.0
    mixed = pseudo._erp_mix(WholeSaysZero(), torch.rand(1, 3, 2 * h, 2 * w), None, tangent)
    assert torch.allclose(mixed.sum(0), torch.ones(h, w), atol=1e-6)
    assert abs(float(mixed[0, h // 2, 0]) - 0.5) < 0.01 and float(mixed[0, 0, 0]) < 0.05
    assert float(mixed[1, 0, 0]) > 0.95 and torch.all(mixed[2] == 0)
    ds, teacher = world
    mixed_set = build_pseudo_labels(ds, teacher, PseudoLabelSpec(teacher=teacher, shard_size=4, fusion="tangent+erp"),
                                    ds.classes, progress=False)
    assert np.allclose(mixed_set.load(ds.stems[0])["probs"].sum(0), 1, atol=2e-3)
    with pytest.raises(UsageError, match="fusion"):
        PseudoLabelSpec(teacher=teacher, fusion="erp-only")
