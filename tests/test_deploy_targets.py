"""Deploy, part 3: target profiles, lint for TensorRT/DLA, the TensorRT calibration cache format."""

from __future__ import annotations

import pytest

from panoedge.deploy.targets import list_targets, load_target, parse_target
from panoedge.deploy.trt_cache import (check_cache, format_cache, hex_to_scale, read_cache, retag, scale_to_hex,
                                       version_tag, write_cache)
from panoedge.errors import ConfigError, DataError, UsageError
from tests.test_deploy_export import HW, deploy_root, export_report, fp32_onnx, student_dir  # noqa: F401

REQUIRED = {"jetson", "jetson-agx-orin", "jetson-orin-nx", "jetson-orin-nano", "desktop-gpu", "cpu"}


def test_every_required_profile_loads():
    assert REQUIRED <= set(list_targets())
    for name in REQUIRED:
        t = load_target(name)
        assert t.name == name and t.sources, name
    cpu = load_target("cpu")
    assert cpu.input_hw == (256, 512) and cpu.backend == "ort-cpu" and cpu.int8_activations == "uint8"
    agx = load_target("jetson-agx-orin")
    assert agx.compute_capability == "8.7" and agx.dla_cores == 2 and agx.tensorrt == "10.3.0"
    assert agx.jetpack_tensorrt["6.0"] == "8.6.2" and agx.implicit_tensorrt == "10.3.0"
    assert agx.tensorrt_versions == ("8.5.2", "8.6.2", "10.3.0")  # numeric order, not text
    assert load_target("jetson-orin-nano").dla_cores == 0
    assert set(load_target("jetson").modules) == {"jetson-agx-orin", "jetson-orin-nx", "jetson-orin-nano"}


def test_unknown_target_lists_valid_ones():
    with pytest.raises(UsageError) as err:
        load_target("jetson-tx2")
    for name in REQUIRED:
        assert name in str(err.value)


def test_bad_profile_names_the_key(tmp_path):
    data = {"schema": "panoedge.target/1", "name": "bad", "kind": "jetson", "backend": "trt", "precision": "int8",
            "input_size": "500x1000", "int8_activations": "int8", "software": {"tensorrt": "10.3.0"}}
    with pytest.raises(ConfigError, match="input_size"):
        parse_target(data, tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match="gpu.dla_cores"):
        parse_target({**data, "input_size": "256x512", "gpu": {"dla_cores": 5}}, tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match="precision"):
        parse_target({**data, "input_size": "256x512", "precision": "int4"}, tmp_path / "bad.toml")


def test_user_profiles_from_panoedge_targets(tmp_path, monkeypatch):
    text = (load_target("cpu").path and open(load_target("cpu").path).read()).replace('name = "cpu"', 'name = "my-cpu"')
    (tmp_path / "my-cpu.toml").write_text(text)
    monkeypatch.setenv("PANOEDGE_TARGETS", str(tmp_path))
    assert "my-cpu" in list_targets() and load_target("my-cpu").backend == "ort-cpu"


def test_detect_module():
    from panoedge.deploy.targets import detect_module

    fam = load_target("jetson")
    assert detect_module(fam, "NVIDIA Jetson AGX Orin Developer Kit").name == "jetson-agx-orin"
    assert detect_module(fam, "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super").name == "jetson-orin-nano"
    assert detect_module(fam, None) is None


def test_lint_flags_dla_fallbacks_on_jetson_only(fp32_onnx):
    from panoedge.deploy.lint import lint_model
    from panoedge.deploy.onnx_io import load_onnx

    proto = load_onnx(fp32_onnx)
    rep = lint_model(proto, load_target("jetson-agx-orin"))
    assert rep.ok and rep.counts.unsupported == 0
    concat = [f for f in rep.findings if f.op_type == "Concat"]
    assert concat and all(f.severity == "gpu_fallback" and "channel axis" in f.reason for f in concat)
    assert not [f for f in rep.findings if f.op_type == "Conv"]
    assert rep.dla.estimated_loadables > 1
    assert "DLA" in rep.format()
    assert lint_model(proto, load_target("jetson-orin-nano")).counts.gpu_fallback == 0
    assert lint_model(proto, load_target("cpu")).findings == ()


def test_lint_flags_ops_tensorrt_cannot_import(fp32_onnx, tmp_path):
    import onnx

    from panoedge.deploy.lint import lint_model
    from panoedge.deploy.onnx_io import load_onnx

    proto = load_onnx(fp32_onnx)
    node = next(n for n in proto.graph.node if n.op_type == "Relu")
    node.op_type = "Celu"  # a real ONNX op TensorRT's parser does not import
    rep = lint_model(proto, load_target("desktop-gpu"))
    assert not rep.ok and rep.counts.unsupported == 1
    assert rep.findings[0].node == node.name


def test_trt_cache_round_trip(tmp_path):
    assert version_tag("8.6.2") == 8602 and version_tag("8.5.2") == 8502 and version_tag("10.3.0") == 100300
    assert scale_to_hex(1.0) == "3f800000" and hex_to_scale("3c010a14") == pytest.approx(0.0078761, rel=1e-4)
    amax = {"image": 2.64, "/stem/conv/Conv_output_0": 12.5, "zeros": 0.0}
    path = write_cache(tmp_path / "calib.cache", amax, "8.6.2")
    text = path.read_text()
    assert text.splitlines()[0] == "TRT-8602-EntropyCalibration2"
    assert text.splitlines()[1] == f"image: {scale_to_hex(2.64 / 127)}"
    header, scales = read_cache(path)
    assert header == {"version": 8602, "algorithm": "EntropyCalibration2"}
    assert scales["image"] == pytest.approx(2.64 / 127, rel=1e-7) and scales["zeros"] > 0
    assert format_cache({k: s * 127 for k, s in scales.items()}, "8.6.2") == text
    assert retag(text, "8.5.2").splitlines()[0] == "TRT-8502-EntropyCalibration2"


def test_stale_or_malformed_cache_is_caught(tmp_path):
    path = write_cache(tmp_path / "calib.cache", {"image": 1.0, "gone": 2.0}, "8.6.2")
    rep = check_cache(path, {"image", "new"}, "8.5.2")
    assert not rep["ok"] and rep["unknown"] == ["gone"] and rep["missing"] == ["new"]
    assert rep["version_matches"] is False
    (tmp_path / "bad.cache").write_text("TRT-8602-EntropyCalibration2\nimage: zzzz\n")
    with pytest.raises(DataError, match="line 2"):
        read_cache(tmp_path / "bad.cache")
    (tmp_path / "nohead.cache").write_text("image: 3f800000\n")
    with pytest.raises(DataError, match="header"):
        read_cache(tmp_path / "nohead.cache")
