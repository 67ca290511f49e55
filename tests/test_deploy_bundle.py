"""Deploy, part 4: bundles (build, manifest, verify, atomicity), the engine step without TensorRT,
``bench model``, and running a bundle through the runtime."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import panoedge.cli.deploy  # noqa: F401  (registers the commands)
import panoedge.cli.evaluate  # noqa: F401
from panoedge.cli.app import app
from panoedge.deploy.quantize import QuantizeConfig
from panoedge.errors import DataError, UsageError
from tests.test_deploy_export import HW, dataset, deploy_root, export_report, fp32_onnx, student_dir  # noqa: F401

FAST = QuantizeConfig(n=6, n_eval=2, latency_repeat=2, threads=1)


@pytest.fixture(scope="session")
def rig_file(deploy_root) -> Path:
    from panoedge.stitch.rig import save_rig
    from panoedge.synth.rig_render import synthetic_rig

    if (deploy_root / "rig.yaml").is_file():
        return deploy_root / "rig.yaml"
    return save_rig(synthetic_rig(64, seed=0), deploy_root / "rig.yaml")


@pytest.fixture(scope="session")
def bundle(student_dir, dataset, rig_file, deploy_root) -> Path:
    from panoedge.deploy.bundle import build_bundle

    out = deploy_root / "bundle-jetson"
    if (out / "manifest.json").is_file():
        return out
    build_bundle(student_dir, "jetson", dataset, out, size=HW, rig=rig_file, quantize=FAST, progress=False)
    return out


def test_bundle_holds_everything_with_hashes(bundle):
    from panoedge.home import sha256_file

    m = json.loads((bundle / "manifest.json").read_text())
    assert m["schema"] == "panoedge.bundle/1"
    expected = {"model.fp32.onnx", "model.int8.onnx", "model.int8.calib.cache", "model.int8.ranges.json",
                "classes.json", "preprocess.json", "target.toml", "lint.json", "quantize.json", "build_engine.sh",
                "rig.yaml"}
    assert expected == set(m["files"])
    for rel, entry in m["files"].items():
        assert sha256_file(bundle / rel) == entry["sha256"] and (bundle / rel).stat().st_size == entry["bytes"]
    assert m["input"] == {"name": "image", "shape": [1, 3, *HW], "dtype": "float32"}
    assert [o["name"] for o in m["outputs"]] == ["seg", "depth"]
    assert m["target"]["name"] == "jetson" and m["calibration"]["activations"] == "int8"
    assert m["accuracy"]["fp32"]["n_images"] == 2 and "int8" in m["accuracy"]
    assert m["lint"]["fp32"]["counts"]["gpu_fallback"] > 0  # wrap-around Concat along W falls back from DLA
    assert m["lint"]["fp32"]["dla"]["estimated_loadables"] <= 16 and m["engine_plan"]["int8_engine"] == "dla"
    assert m["calibration"]["trt_cache_version"] == "10.3.0"
    assert {"onnxruntime", "onnx", "numpy"} <= set(m["versions"])
    assert json.loads((bundle / "classes.json").read_text())["classes"][0]


def test_verify_passes_then_refuses_a_changed_bundle(bundle, tmp_path):
    from panoedge.runtime.bundle import load_bundle, verify_bundle

    assert verify_bundle(bundle).ok
    res = CliRunner().invoke(app, ["bundle", "verify", str(bundle)])
    assert res.exit_code == 0 and "ok" in res.output
    copy = shutil.copytree(bundle, tmp_path / "b")
    data = bytearray((copy / "model.int8.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / "model.int8.onnx").write_bytes(bytes(data))
    rep = verify_bundle(copy)
    assert not rep.ok and any("model.int8.onnx" in p for p in rep.problems)
    res = CliRunner().invoke(app, ["bundle", "verify", str(copy)])
    assert res.exit_code != 0
    with pytest.raises(DataError, match="changed"):
        load_bundle(copy)
    (copy / "model.int8.onnx").write_bytes((bundle / "model.int8.onnx").read_bytes())
    (copy / "extra.txt").write_text("added later")
    assert not verify_bundle(copy).ok


def test_bundle_runs_through_the_runtime(bundle):
    from panoedge.runtime.bundle import load_bundle

    b = load_bundle(bundle)
    rgb = np.random.default_rng(0).integers(0, 255, (128, 256, 3), dtype=np.uint8)
    x = b.preprocess(rgb)
    assert x.shape == (1, 3, *HW) and x.dtype == np.float32
    for precision in ("fp32", "int8"):
        out = b.postprocess(b.runner(precision=precision, threads=1).infer({b.input_name: x}))
        assert out["labels"].shape == HW and out["labels"].dtype == np.uint8
        assert out["depth"].shape == HW and (out["depth"] > 0).all()
    with pytest.raises(UsageError, match="no int8 TensorRT engine"):
        b.runner(backend="trt")


def test_interrupted_build_leaves_no_half_bundle(fp32_onnx, dataset, tmp_path, monkeypatch):
    from panoedge.deploy import bundle as bundle_mod

    def boom(*a, **k):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(bundle_mod, "quantize_model", boom)
    with pytest.raises(RuntimeError, match="interrupted"):
        bundle_mod.build_bundle(fp32_onnx, "cpu", dataset, tmp_path / "out", size=HW, quantize=FAST, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_build_refuses_bad_input_before_work(fp32_onnx, dataset, tmp_path):
    from panoedge.deploy.bundle import build_bundle

    with pytest.raises(UsageError, match="unknown target"):
        build_bundle(fp32_onnx, "jetson-tx2", dataset, tmp_path / "o", size=HW, quantize=FAST, progress=False)
    with pytest.raises(UsageError, match="exported at 64x128"):  # without --size: the ONNX's own size
        build_bundle(fp32_onnx, "cpu", dataset, tmp_path / "o", size=(256, 512), quantize=FAST, progress=False)
    with pytest.raises(UsageError, match="no calibration data"):
        build_bundle(fp32_onnx, "cpu", None, tmp_path / "o", quantize=FAST, progress=False)
    (tmp_path / "taken").mkdir()
    with pytest.raises(UsageError, match="already exists"):
        build_bundle(fp32_onnx, "cpu", dataset, tmp_path / "taken", size=HW, quantize=FAST, progress=False)
    assert not (tmp_path / "o").exists()


def test_engine_without_tensorrt_prints_trtexec(bundle):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here; the engine would be built")
    except ImportError:
        pass
    from panoedge.deploy.engine import build_engine

    rep = build_engine(bundle)
    assert not rep.built and rep.command.startswith("trtexec ")
    name = Path(rep.engine).name
    assert name == "model.int8.trt10.3.0.sm87.64x128.b1.dla0.engine"  # the lint fits: INT8 on the DLA
    for token in ("--onnx=", "model.fp32.onnx", "--int8", "--fp16", "--calib=", f"--saveEngine={rep.engine}",
                  "--useDLACore=0", "--allowGPUFallback", "--timingCacheFile="):
        assert token in rep.command
    assert "--stronglyTyped" not in rep.command  # the DLA runs implicit INT8 only
    assert "--stronglyTyped" in rep.alternatives[0].command and "model.int8.onnx" in rep.alternatives[0].command
    old = build_engine(bundle, tensorrt="8.6.2", dla_core=None)
    assert "model.int8.onnx" in old.command and "--int8" in old.command and "--calib=" not in old.command
    assert Path(old.engine).name == "model.int8.trt8.6.2.sm87.64x128.b1.engine"
    res = CliRunner().invoke(app, ["engine", str(bundle), "--precision", "fp16", "--dla-core", "none"])
    assert res.exit_code == 0 and "--fp16" in res.output and ".fp16.trt10.3.0.sm87.64x128.b1.engine" in res.output
    script = (bundle / "build_engine.sh").read_text()
    assert "trtexec --onnx=model.int8.onnx" in script and "--stronglyTyped" in script and "--useDLACore=0" in script


def test_bench_model_json(bundle, tmp_path):
    out = tmp_path / "bench.json"
    res = CliRunner().invoke(app, ["bench", "model", str(bundle), "--warmup", "1", "--repeat", "3", "--threads", "1",
                                   "--json", str(out)])
    assert res.exit_code == 0, res.output
    rep = json.loads(out.read_text())
    assert rep["schema"] == "panoedge.bench/1" and rep["backend"] == "ort-cpu"
    assert set(rep["cases"]) == {"fp32", "int8"}
    for case in rep["cases"].values():
        assert case["fps"] > 0 and {"min", "median", "p99"} == set(case["latency_ms"])
    assert rep["ratios"]["int8_speedup"] > 0
    assert rep["machine"]["cpu"] and rep["input"]["shape"] == [1, 3, *HW]
    assert rep["command"].startswith("panoedge")


def test_targets_command_lists_profiles(tmp_path):
    res = CliRunner().invoke(app, ["targets", "--json", str(tmp_path / "t.json")])
    assert res.exit_code == 0
    for name in ("jetson", "jetson-agx-orin", "jetson-orin-nx", "jetson-orin-nano", "desktop-gpu", "cpu"):
        assert name in res.output
    assert json.loads((tmp_path / "t.json").read_text())["schema"] == "panoedge.targets/1"


def test_bundle_info_and_quantize_cli(bundle, fp32_onnx, dataset, tmp_path):
    res = CliRunner().invoke(app, ["bundle", "info", str(bundle)])
    assert res.exit_code == 0 and "jetson" in res.output and "model.int8.onnx" in res.output
    res = CliRunner().invoke(app, ["quantize", str(fp32_onnx), "--out", str(tmp_path / "m.int8.onnx")])
    assert res.exit_code == 2 and "--calib" in res.output  # required, and shown so in --help


def test_build_says_its_size_and_warns_when_it_differs_from_the_trained_one(bundle, student_dir, dataset, tmp_path):
    from panoedge.deploy.bundle import build_bundle
    from panoedge.models.checkpoint import trained_hw

    m = json.loads((bundle / "manifest.json").read_text())
    trained = trained_hw(student_dir)
    assert m["input_size"]["hw"] == list(HW) and m["input_size"]["from"] == "--size"
    assert m["input_size"]["target_hw"] == [384, 768]
    assert (m["warnings"] != []) == (tuple(trained) != tuple(HW))
    onnx_in = bundle / m["models"]["fp32"]  # an ONNX file: its own size is the default, not the target's
    m2 = build_bundle(onnx_in, "cpu", dataset, tmp_path / "cpu", quantize=FAST, progress=False).to_dict()["manifest"]
    assert m2["input_size"] == {"hw": list(HW), "from": "trained", "trained_hw": list(HW), "target_hw": [256, 512]}
    assert m2["warnings"] == []


def test_predict_and_eval_take_a_bundle_folder(bundle, dataset, tmp_path):
    import cv2

    first = sorted((Path(dataset) / "rgb").iterdir())[0]
    res = CliRunner().invoke(app, ["predict", str(bundle), str(first), "--out", str(tmp_path / "p")])
    assert res.exit_code == 0, res.output + repr(res.exception)
    labels = cv2.imread(str(tmp_path / "p" / "labels" / f"{first.stem}.png"), cv2.IMREAD_UNCHANGED)
    color = cv2.imread(str(tmp_path / "p" / "depth_color" / f"{first.stem}.png"))
    assert labels is not None and labels.shape[:2] == cv2.imread(str(first)).shape[:2]
    assert color is not None and color.shape[0] > labels.shape[0]  # the image with its scale bar under it
    res = CliRunner().invoke(app, ["eval", str(bundle), "--data", str(dataset), "--max-images", "1"])
    assert res.exit_code == 0 and "mIoU" in res.output, res.output + repr(res.exception)
    (bundle / "classes.json").write_text((bundle / "classes.json").read_text() + " ")  # tampered: refused
    try:
        res = CliRunner().invoke(app, ["predict", str(bundle), str(first), "--out", str(tmp_path / "q")])
        assert res.exit_code != 0 and not (tmp_path / "q").exists()
    finally:
        (bundle / "classes.json").write_text((bundle / "classes.json").read_text()[:-1])
