"""TensorRT without TensorRT: the plan and trtexec command per (target, TensorRT version), the bundle's
engine script run under ``sh``, the Python builder and the runner against recording fakes of the 8.6
and 10.3 bindings, engine selection, CUDA bindings, doctor/backend agreement, the ORT TensorRT EP caches.

What these tests cannot show: that TensorRT accepts the plans (no TensorRT or GPU here).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import panoedge.cli.deploy  # noqa: F401  (registers the commands)
from panoedge.cli.app import app
from panoedge.deploy.targets import load_target
from panoedge.deploy.trt_cache import read_cache, write_cache
from panoedge.deploy.trt_plan import check_trtexec, choose_dla, plan_engine, trtexec_command
from panoedge.errors import UsageError
from tests.trt_fakes import FakeCuda, FakeCudart, api_names, fake_tensorrt

VERSIONS = ("8.5.2", "8.6.2", "10.3.0")
AMAX = {"image": 2.5, "/stem/conv/Conv_output_0": 7.0}


def make_bundle(root: Path, target: str, loadables: int = 5, hw=(384, 768)) -> Path:
    """A bundle folder with what the engine step reads: manifest, model files, calibration cache."""
    tgt = load_target(target)
    root.mkdir(parents=True, exist_ok=True)
    (root / "model.fp32.onnx").write_bytes(b"fp32")
    (root / "model.int8.onnx").write_bytes(b"int8")
    write_cache(root / "model.int8.calib.cache", AMAX, tgt.implicit_tensorrt)
    (root / "classes.json").write_text(json.dumps({"classes": ["a", "b"], "colors": [[0, 0, 0], [255, 255, 255]]}))
    (root / "preprocess.json").write_text(json.dumps({"mean": [0, 0, 0], "std": [1, 1, 1], "scale": 1 / 255}))
    manifest = {"schema": "panoedge.bundle/1", "target": tgt.to_dict(), "classes": "classes.json",
                "preprocess": "preprocess.json",
                "models": {"fp32": "model.fp32.onnx", "int8": "model.int8.onnx"},
                "calibration": {"activations": "int8", "trt_cache": "model.int8.calib.cache"},
                "input": {"name": "image", "shape": [1, 3, *hw]},
                "lint": {"fp32": {"dla": {"estimated_loadables": loadables, "limit_per_core": 16,
                                          "over_limit": loadables > 16}}}}
    from panoedge.home import sha256_file

    manifest["files"] = {p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}  # a bundle lists and hashes
                         for p in sorted(root.iterdir()) if p.is_file()}             # every file it holds
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def _no_tensorrt():
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return
    pytest.skip("TensorRT is installed here")


# ---------------------------------------------------------------- plans and commands

@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("target", ["jetson", "jetson-agx-orin", "jetson-orin-nx", "jetson-orin-nano"])
def test_int8_plans_per_target_and_version(tmp_path, target, version):
    b = make_bundle(tmp_path / "b", target)
    manifest = json.loads((b / "manifest.json").read_text())
    gpu = plan_engine(b, manifest, version, "8.7", "int8", None)
    cmd = trtexec_command(gpu)
    assert gpu.mode == "qdq" and cmd[1].endswith("model.int8.onnx") and not any("--calib" in c for c in cmd)
    if version.startswith("10"):
        assert "--stronglyTyped" in cmd and "--int8" not in cmd and gpu.strongly_typed
    else:
        assert "--int8" in cmd and "--stronglyTyped" not in cmd and not gpu.strongly_typed
    dla = plan_engine(b, manifest, version, "8.7", "int8", 0)
    cmd = trtexec_command(dla)
    assert dla.mode == "calib" and cmd[1].endswith("model.fp32.onnx")
    assert {"--int8", "--fp16", "--useDLACore=0", "--allowGPUFallback"} <= set(cmd) and "--stronglyTyped" not in cmd
    tag = {"8.5.2": 8502, "8.6.2": 8602, "10.3.0": 100300}[version]
    assert f"--calib={b}/engines/model.int8.calib.trt{tag}.cache" in cmd
    assert dla.engine.endswith(f".int8.trt{version}.sm87.384x768.b1.dla0.engine")
    assert Path(gpu.timing_cache).name == f"timing.trt{version}.sm87.cache"


def test_trtexec_flags_are_checked_per_version():
    check_trtexec(["trtexec", "--stronglyTyped"], "10.3.0")
    with pytest.raises(UsageError, match="not accepted by TensorRT 8.6.2"):
        check_trtexec(["trtexec", "--stronglyTyped"], "8.6.2")
    with pytest.raises(UsageError, match="not in panoedge's table"):
        check_trtexec(["trtexec", "--best"], "10.3.0")


def test_plans_refuse_what_tensorrt_cannot_build(tmp_path):
    b = make_bundle(tmp_path / "b", "jetson-orin-nx")
    m = json.loads((b / "manifest.json").read_text())
    with pytest.raises(UsageError, match="FP16 and INT8 only"):
        plan_engine(b, m, "10.3.0", "8.7", "fp32", 0)
    with pytest.raises(UsageError, match="no implicit"):
        plan_engine(b, m, "11.0.0", "8.7", "int8", 0)
    m["calibration"]["activations"] = "uint8"
    with pytest.raises(UsageError, match="symmetric int8"):
        plan_engine(b, m, "10.3.0", "8.7", "int8", None)
    assert plan_engine(b, m, "10.3.0", "8.7", "int8", 0).mode == "calib"  # the DLA plan reads the cache, not QDQ


def test_choose_dla():
    nx = load_target("jetson-orin-nx").to_dict()
    fits = {"estimated_loadables": 5, "limit_per_core": 16, "over_limit": False}
    over = {"estimated_loadables": 27, "limit_per_core": 16, "over_limit": True}
    assert choose_dla("auto", nx, "int8", None, None, fits).core == 0
    c = choose_dla("auto", nx, "int8", None, None, over)
    assert c.core is None and "27 DLA loadables" in c.reason and "--dla-core 0" in c.reason
    assert choose_dla(0, nx, "int8", None, None, over).core == 0  # asked for: tried anyway
    nano = load_target("jetson-orin-nano").to_dict()
    assert choose_dla("auto", load_target("jetson").to_dict(), "int8", 0, nano, fits).core is None
    assert "no DLA" in choose_dla("auto", load_target("jetson").to_dict(), "int8", 0, nano, fits).reason
    assert "int8_engine" in choose_dla("auto", load_target("desktop-gpu").to_dict(), "int8", 0, None, None).reason
    assert choose_dla("auto", nx, "fp32", None, None, fits).core is None
    with pytest.raises(UsageError, match="has 1 DLA core"):
        choose_dla(1, nx, "int8", 1, None, fits)  # the 8 GB module: TensorRT sees one core


def test_target_profiles_say_which_int8_plan(tmp_path):
    assert load_target("jetson-orin-nx").int8_engine == "dla"
    assert load_target("jetson-orin-nano").int8_engine == "gpu" and load_target("desktop-gpu").int8_engine == "gpu"
    from panoedge.deploy.targets import parse_target
    from panoedge.errors import ConfigError

    data = {"schema": "panoedge.target/1", "name": "x", "kind": "gpu", "backend": "trt", "precision": "int8",
            "input_size": "256x512", "int8_activations": "int8", "int8_engine": "dla",
            "gpu": {"dla_cores": 0}, "software": {"tensorrt": "10.3.0"}}
    with pytest.raises(ConfigError, match="int8_engine"):
        parse_target(data, "x.toml")


# ---------------------------------------------------------------- the engine command without TensorRT

def test_engine_command_for_orin_nx_prints_both_plans(tmp_path):
    _no_tensorrt()
    b = make_bundle(tmp_path / "nx", "jetson-orin-nx")
    res = CliRunner().invoke(app, ["engine", str(b), "--trt-version", "10.3", "--cc", "8.7"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    dla = next(ln for ln in lines if ln.startswith("trtexec") and "--useDLACore=0" in ln)
    gpu = next(ln for ln in lines if ln.startswith("trtexec") and "--useDLACore" not in ln)
    assert "--int8" in dla and "--calib=" in dla and "--stronglyTyped" not in dla and "model.fp32.onnx" in dla
    assert "--stronglyTyped" in gpu and "model.int8.onnx" in gpu and "--calib" not in gpu
    assert "DLA core 0: 5 DLA loadables" in res.output
    assert ".int8.trt10.3.0.sm87." in dla  # "10.3" names the engine as TensorRT 10.3.0 will look for it
    header, scales = read_cache(b / "engines" / "model.int8.calib.trt100300.cache")
    assert header["version"] == 100300 and scales
    res = CliRunner().invoke(app, ["engine", str(b), "--trt-version", "8.6.2", "--cc", "8.7"])
    cmds = [ln for ln in res.output.splitlines() if ln.startswith("trtexec")]
    assert res.exit_code == 0 and len(cmds) == 2
    for c in cmds:
        check_trtexec(c.split(), "8.6.2")
        assert "--stronglyTyped" not in c
    assert read_cache(b / "engines" / "model.int8.calib.trt8602.cache")[0]["version"] == 8602
    res = CliRunner().invoke(app, ["engine", str(b), "--dla-core", "x"])
    assert isinstance(res.exception, UsageError) and "expected auto, none or a core number" in str(res.exception)


def test_engine_auto_falls_back_to_gpu_over_the_loadable_limit(tmp_path):
    _no_tensorrt()
    from panoedge.deploy.engine import build_engine

    b = make_bundle(tmp_path / "agx", "jetson-agx-orin", loadables=27)
    rep = build_engine(b, tensorrt="10.3.0")
    assert rep.plan.dla_core is None and "--stronglyTyped" in rep.command
    assert "27 DLA loadables" in rep.dla.reason
    forced = build_engine(b, tensorrt="10.3.0", dla_core=0)
    assert "--useDLACore=0" in forced.command and forced.warnings
    nano = build_engine(make_bundle(tmp_path / "nano", "jetson-orin-nano"), tensorrt="8.5.2")
    assert nano.plan.dla_core is None and nano.alternatives == () and "--int8" in nano.command


# ---------------------------------------------------------------- build_engine.sh, run under sh

def _run_script(bundle: Path, tmp_path: Path, version: str, model: str) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "python3").write_text(f"#!/bin/sh\necho {version}\n")
    (bin_dir / "trtexec").write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done > "$TRTEXEC_LOG"\n')
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\necho 8.9\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    (tmp_path / "model").write_bytes(model.encode() + b"\x00")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "TRTEXEC_LOG": str(tmp_path / "argv"),
           "PANOEDGE_DEVICE_MODEL_FILE": str(tmp_path / "model")}
    return subprocess.run(["sh", str(bundle / "build_engine.sh")], env=env, capture_output=True, text=True, timeout=30)


@pytest.mark.skipif(shutil.which("sh") is None or shutil.which("awk") is None, reason="needs sh and awk")
@pytest.mark.parametrize("version", ["8.5.2.2", "8.6.2.3", "10.3.0"])
@pytest.mark.parametrize("module", ["NVIDIA Jetson AGX Orin Developer Kit", "NVIDIA Jetson Orin Nano Developer Kit"])
def test_bundle_engine_script_per_jetpack_and_module(tmp_path, version, module):
    from panoedge.deploy.bundle import engine_plan
    from panoedge.deploy.engine_script import engine_script

    b = make_bundle(tmp_path / "b", "jetson")
    tgt = load_target("jetson")
    plan = engine_plan(tgt, {"dla": json.loads((b / "manifest.json").read_text())["lint"]["fp32"]["dla"]})
    (b / "build_engine.sh").write_text(engine_script(json.loads((b / "manifest.json").read_text()), tgt,
                                                     plan["int8_engine"] == "dla", plan["reason"]))
    res = _run_script(b, tmp_path, version, module)
    assert res.returncode == 0, res.stderr
    argv = (tmp_path / "argv").read_text().split()
    short = ".".join(version.split(".")[:3])
    check_trtexec(["trtexec", *argv], short)
    if "Nano" in module:
        assert "--onnx=model.int8.onnx" in argv and not any(a.startswith("--useDLACore") for a in argv)
    else:
        tag = {"8.5.2": 8502, "8.6.2": 8602, "10.3.0": 100300}[short]
        assert "--onnx=model.fp32.onnx" in argv and "--useDLACore=0" in argv
        assert f"--calib=engines/model.int8.calib.trt{tag}.cache" in argv
        assert read_cache(b / "engines" / f"model.int8.calib.trt{tag}.cache")[0]["version"] == tag
    assert f"--saveEngine=engines/model.int8.trt{short}.sm87.384x768.b1" in " ".join(argv)


def test_bundle_over_the_loadable_limit_plans_the_gpu_and_says_so(tmp_path):
    from panoedge.deploy.bundle import engine_plan
    from panoedge.deploy.engine_script import engine_script

    tgt = load_target("jetson")
    plan = engine_plan(tgt, {"dla": {"estimated_loadables": 25, "limit_per_core": 16, "over_limit": True}})
    assert plan["int8_engine"] == "gpu" and plan["wanted"] == "dla" and "25 DLA loadables" in plan["reason"]
    b = make_bundle(tmp_path / "b", "jetson", loadables=25)
    text = engine_script(json.loads((b / "manifest.json").read_text()), tgt, False, plan["reason"])
    assert "--useDLACore" not in text and "25 DLA loadables" in text and "--stronglyTyped" in text


@pytest.mark.skipif(shutil.which("sh") is None or shutil.which("awk") is None, reason="needs sh and awk")
def test_bundle_engine_script_refuses_an_unplanned_tensorrt(tmp_path):
    from panoedge.deploy.engine_script import engine_script

    b = make_bundle(tmp_path / "b", "desktop-gpu")
    tgt = load_target("desktop-gpu")
    (b / "build_engine.sh").write_text(engine_script(json.loads((b / "manifest.json").read_text()), tgt, False, "GPU"))
    res = _run_script(b, tmp_path, "8.6.1", "")
    assert res.returncode == 1 and "TensorRT 8.6.1" in res.stderr and "10.x" in res.stderr
    res = _run_script(b, tmp_path, "10.7.0", "")
    argv = (tmp_path / "argv").read_text().split()
    assert res.returncode == 0 and "--stronglyTyped" in argv
    assert "--saveEngine=engines/model.int8.trt10.7.0.sm89.384x768.b1.engine" in argv


# ---------------------------------------------------------------- the Python builder against fake bindings

@pytest.mark.parametrize("version", ["8.6.2", "10.3.0"])
@pytest.mark.parametrize("dla", [None, 0])
def test_builder_against_fake_bindings(tmp_path, version, dla):
    from panoedge.deploy.engine import write_tagged_cache
    from panoedge.deploy.trt_build import build_with_tensorrt

    trt = fake_tensorrt(version)
    b = make_bundle(tmp_path / "b", "jetson-agx-orin")
    plan = plan_engine(b, json.loads((b / "manifest.json").read_text()), version, "8.7", "int8", dla)
    write_tagged_cache(plan)
    Path(plan.engine).parent.mkdir(parents=True, exist_ok=True)
    build_with_tensorrt(plan, trt=trt)
    asked = json.loads(Path(plan.engine).read_bytes()[4:])
    major = int(version.split(".")[0])
    if dla is None:
        assert asked["onnx"].endswith("model.int8.onnx") and asked["calib_header"] is None
        assert asked["network_flags"] == (1 << 1 if major >= 10 else 1 << 0)  # STRONGLY_TYPED / EXPLICIT_BATCH
        assert asked["flags"] == ([] if major >= 10 else ["INT8"])
    else:
        assert asked["onnx"].endswith("model.fp32.onnx") and asked["flags"] == ["INT8", "FP16", "GPU_FALLBACK"]
        assert asked["device"] == "DLA" and asked["dla_core"] == 0
        assert asked["network_flags"] == (0 if major >= 10 else 1)
        assert asked["calib_header"] == f"TRT-{8602 if major < 10 else 100300}-EntropyCalibration2"
    assert Path(plan.timing_cache).read_bytes().startswith(b"TIMING")
    assert trt._api.touched <= api_names("10.3" if major >= 10 else "8.6")


def test_fake_bindings_refuse_names_a_release_lacks():
    with pytest.raises(AttributeError, match="tensorrt 8.6.2 has no NetworkDefinitionCreationFlag.STRONGLY_TYPED"):
        fake_tensorrt("8.6.2").NetworkDefinitionCreationFlag.STRONGLY_TYPED
    assert "ICudaEngine.num_bindings" not in api_names("10.3")
    assert "IExecutionContext.execute_async_v2" not in api_names("10.3")
    for name in ("ICudaEngine.num_io_tensors", "IExecutionContext.execute_async_v3", "IExecutionContext.set_tensor_address",
                 "TensorIOMode.INPUT", "IBuilderConfig.int8_calibrator", "IInt8EntropyCalibrator2"):
        assert name in api_names("8.6") and name in api_names("10.3"), name


# ---------------------------------------------------------------- the runner and engine selection

def _engine(folder: Path, version: str, cc: str = "87", dla: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / f"model.int8.trt{version}.sm{cc}.4x8.b1{dla}.engine"
    p.write_bytes(b"PLAN{}")
    return p


@pytest.mark.parametrize("version", ["8.6.2", "10.3.0"])
def test_runner_against_fake_bindings(tmp_path, version, monkeypatch):
    from panoedge.runtime.trt_runner import TrtRunner

    trt, cuda = fake_tensorrt(version), FakeCuda()
    with TrtRunner(_engine(tmp_path, version), trt=trt, cuda=cuda) as r:
        assert [s.name for s in r.inputs] == ["image"] and [s.name for s in r.outputs] == ["seg"]
        x = np.random.rand(1, 3, 4, 8).astype(np.float32)
        out = r.infer({"image": x})
        assert np.allclose(out["seg"], 2 * x) and cuda.pinned_made == 2 and cuda.synced == 1
    assert len(cuda.freed) == 2
    assert r.closed and r.context is None and r.engine is None and r.runtime is None
    assert trt._api.touched <= api_names("10.3" if version.startswith("10") else "8.6")
    assert {"ICudaEngine.num_io_tensors", "IExecutionContext.execute_async_v3"} <= trt._api.touched


def test_runner_refuses_old_tensorrt_and_foreign_plans(tmp_path):
    from panoedge.errors import DataError
    from panoedge.runtime.trt_runner import TrtRunner

    with pytest.raises(UsageError, match="TensorRT >= 8.5"):
        TrtRunner(_engine(tmp_path, "8.4.3"), trt=type("T", (), {"__version__": "8.4.3"})(), cuda=FakeCuda())
    bad = tmp_path / "x.engine"
    bad.write_bytes(b"junk")
    with pytest.raises(DataError, match="cannot deserialize"):
        TrtRunner(bad, trt=fake_tensorrt("10.3.0"), cuda=FakeCuda())


def test_engine_selection_by_version_and_gpu_not_by_name(tmp_path):
    from panoedge.runtime.trt_select import select_engine

    e10, e86 = _engine(tmp_path, "10.3.0"), _engine(tmp_path, "8.6.2")
    _engine(tmp_path, "10.3.0", cc="89")
    assert sorted([e10, e86])[-1] == e86  # what "the last sorted file" used to pick
    assert select_engine([e10, e86], "10.3.0", "8.7", "int8").path == e10
    assert select_engine([e10, e86], "8.6.2.3", "8.7", "int8").path == e86
    assert select_engine([_engine(tmp_path / "short", "10.3")], "10.3.0", "8.7", "int8").path.name.startswith(
        "model.int8.trt10.3.")
    # a sidecar beats the name
    (tmp_path / "renamed.engine").write_bytes(b"PLAN{}")
    (tmp_path / "renamed.engine.json").write_text(json.dumps(
        {"precision": "int8", "tensorrt": "8.5.2", "compute_capability": "8.7", "dla_core": 0}))
    assert select_engine(list(tmp_path.glob("*.engine")), "8.5.2.2", "8.7", "int8").path.name == "renamed.engine"
    with pytest.raises(UsageError, match="no int8 TensorRT engine for TensorRT 10.4.0.*trt10.3.0.sm87"):
        select_engine([e10, e86], "10.4.0", "8.7", "int8")
    with pytest.raises(UsageError, match="sm 8.6"):
        select_engine([e10], "10.3.0", "8.6", "int8")


def test_bundle_runner_opens_the_matching_engine(tmp_path, monkeypatch):
    from panoedge.runtime import cuda_binding
    from panoedge.runtime.trt_runner import open_bundle_engine

    engines = [_engine(tmp_path / "engines", "10.3.0"), _engine(tmp_path / "engines", "8.6.2")]
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt("8.6.2"))
    monkeypatch.setattr(cuda_binding, "load_binding", lambda prefer=None: FakeCuda("8.7"))
    r = open_bundle_engine(engines, "int8")
    assert r.path == engines[1]
    r.close()


# ---------------------------------------------------------------- CUDA bindings, doctor and backend selection

def test_cuda_python_binding_with_page_locked_buffers():
    from panoedge.runtime.cuda_binding import CudaPython

    rt = FakeCudart()
    cuda = CudaPython(rt)
    assert cuda.compute_capability() == "8.7"
    host = cuda.pinned((2, 3), np.float32)
    assert host.shape == (2, 3) and "cudaMallocHost" in rt.calls  # page-locked, not a pageable NumPy array
    dev, stream = cuda.malloc(host.nbytes), cuda.stream()
    host[...] = np.arange(6).reshape(2, 3)
    cuda.htod(dev, host, stream)
    back = cuda.pinned((2, 3), np.float32)
    cuda.dtoh(back, dev, stream)
    cuda.synchronize(stream)
    assert np.array_equal(back, host)
    cuda.free_pinned(host)
    cuda.destroy(stream)
    assert {"cudaFreeHost", "cudaStreamDestroy", "cudaMemcpyAsync"} <= set(rt.calls)


@pytest.mark.parametrize("have", [set(), {"tensorrt"}, {"tensorrt", "pycuda.driver"}, {"tensorrt", "cuda.bindings.runtime"},
                                  {"pycuda.driver"}])
def test_doctor_and_backend_selection_agree(monkeypatch, have):
    from panoedge.env import backends
    from panoedge.runtime import bundle as rb
    from panoedge.runtime import cuda_binding

    monkeypatch.setattr(cuda_binding, "installed", lambda m: m in have)
    usable = backends()["trt"].usable
    assert usable == rb._usable("trt") == ("tensorrt" in have and len(have) > 1)
    if have == {"tensorrt"}:
        assert "no usable CUDA binding" in backends()["trt"].why
    expect = "cuda-python" if "cuda.bindings.runtime" in have else ("pycuda" if "pycuda.driver" in have else None)
    assert cuda_binding.binding_name() == expect


def test_cuda_python_built_for_another_cuda_is_skipped_on_a_jetson(monkeypatch, tmp_path):
    from panoedge.env import backends
    from panoedge.runtime import cuda_binding

    (tmp_path / "tegra").write_text("# R36 (release)")
    (tmp_path / "version.json").write_text(json.dumps({"cuda": {"version": "12.2.140"}}))
    monkeypatch.setattr(cuda_binding, "TEGRA_RELEASE", tmp_path / "tegra")
    monkeypatch.setattr(cuda_binding, "CUDA_VERSION_FILE", tmp_path / "version.json")
    monkeypatch.setattr(cuda_binding, "cuda_python_major", lambda: 13)
    monkeypatch.setattr(cuda_binding, "installed", lambda m: m in {"tensorrt", "cuda.bindings.runtime"})
    assert cuda_binding.jetson_cuda_major() == 12 and cuda_binding.binding_name() is None
    why = backends()["trt"].why
    assert "cuda-python 13.x is built for CUDA 13" in why and "'cuda-python>=12,<13'" in why
    monkeypatch.setattr(cuda_binding, "installed", lambda m: m in {"tensorrt", "cuda.bindings.runtime", "pycuda.driver"})
    assert cuda_binding.binding_name() == "pycuda"  # pycuda is used instead
    monkeypatch.setattr(cuda_binding, "cuda_python_major", lambda: 12)
    assert cuda_binding.binding_name() == "cuda-python"


def test_pycuda_binding_uses_the_primary_context():
    from panoedge.runtime.cuda_binding import PyCuda

    calls = []

    class Ctx:
        def push(self):
            calls.append("push")

        def pop(self):
            calls.append("pop")

    class Dev:
        def __init__(self, i):
            pass

        def retain_primary_context(self):
            calls.append("retain")
            return Ctx()

        def compute_capability(self):
            return (8, 7)

    drv = type("drv", (), {"init": staticmethod(lambda: calls.append("init")), "Device": Dev,
                           "pagelocked_empty": staticmethod(lambda shape, dtype: np.zeros(shape, dtype))})
    cuda = PyCuda(drv)
    assert calls == ["init", "retain", "push"] and cuda.compute_capability() == "8.7"
    assert cuda.pinned((2,), np.float32).shape == (2,)
    cuda.destroy(None)
    cuda.release()
    assert calls[-1] == "pop" and calls.count("pop") == 1


# ---------------------------------------------------------------- ORT TensorRT EP, extras

def test_ort_tensorrt_ep_caches_under_panoedge_home(tmp_path, monkeypatch):
    from panoedge.home import panoedge_home
    from panoedge.runtime import cuda_binding
    from panoedge.runtime.ort_runner import trt_ep_options

    monkeypatch.setattr(cuda_binding, "compute_capability", lambda: "8.7")
    model = tmp_path / "model.int8.onnx"
    model.write_bytes(b"x")
    opts = trt_ep_options(model)
    root = Path(opts["trt_engine_cache_path"])
    assert opts["trt_engine_cache_enable"] and opts["trt_timing_cache_enable"] and opts["trt_int8_enable"]
    assert root.parent == panoedge_home() / "ort-trt" and ".sm87" in root.name
    assert Path(opts["trt_timing_cache_path"]).is_dir()
    model.write_bytes(b"y")  # a changed model gets another cache
    assert trt_ep_options(model)["trt_engine_cache_path"] != str(root)
    fp32 = tmp_path / "model.fp32.onnx"
    fp32.write_bytes(b"z")
    assert "trt_int8_enable" not in trt_ep_options(fp32)


def test_extras_bound_cuda_python_to_12():
    from packaging.requirements import Requirement

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    extras = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for extra in ("tensorrt", "jetson"):
        req = next(Requirement(r) for r in extras[extra] if r.startswith("cuda-python"))
        assert "12.9.10" in req.specifier and "12.0" in req.specifier and "13.0.0" not in req.specifier, extra


def test_bench_picks_the_engine_of_this_tensorrt(tmp_path, monkeypatch):
    from panoedge.deploy.bench import _models
    from panoedge.runtime import cuda_binding

    b = make_bundle(tmp_path / "b", "jetson-agx-orin")
    _engine(b / "engines", "10.3.0")
    e86 = _engine(b / "engines", "8.6.2")
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt("8.6.2"))
    monkeypatch.setattr(cuda_binding, "load_binding", lambda prefer=None: FakeCuda("8.7"))
    assert _models(b, "trt", None) == {"int8": e86}


@pytest.mark.parametrize("model,dla", [("NVIDIA Jetson AGX Orin Developer Kit", 0),
                                       ("NVIDIA Jetson Orin Nano Developer Kit", None)])
def test_engine_builds_on_the_device_with_fake_bindings(tmp_path, monkeypatch, model, dla):
    """`panoedge engine` on a Jetson: detection, the plan, the build, the sidecar, then reuse."""
    from panoedge import env
    from panoedge.deploy.engine import build_engine
    from panoedge.runtime import cuda_binding
    from panoedge.runtime.trt_select import select_engine

    trt = fake_tensorrt("10.3.0")
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(cuda_binding, "compute_capability", lambda: "8.7")
    monkeypatch.setattr(env, "jetson_model", lambda: model)
    b = make_bundle(tmp_path / "b", "jetson")
    with pytest.raises(UsageError, match="detected"):
        build_engine(b, tensorrt="8.6.2")
    rep = build_engine(b)
    assert rep.built and rep.plan.dla_core == dla and rep.device.tensorrt == "10.3.0"
    asked = json.loads(Path(rep.engine).read_bytes()[4:])
    assert asked["device"] == ("DLA" if dla == 0 else None)
    assert build_engine(b).cached
    assert select_engine(list((b / "engines").glob("*.engine")), "10.3.0", "8.7", "int8").path == Path(rep.engine)
    assert trt._api.touched <= api_names("10.3")
