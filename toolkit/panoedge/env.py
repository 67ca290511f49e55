"""What this machine is and which inference backends it can use.

Used by ``panoedge doctor`` and by every report's ``machine`` block (CONVENTIONS.md).
Nothing heavy is imported at module load; each probe imports lazily and never fails.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from panoedge.versions import package_version


_version = package_version


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, ``platform`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def jetson_model() -> str | None:
    """``'NVIDIA Jetson AGX Orin ...'`` on a Jetson, else None (device tree or nv_tegra_release)."""
    for p in (Path("/proc/device-tree/model"), Path("/sys/firmware/devicetree/base/model")):
        try:
            text = p.read_text(errors="ignore").strip("\x00 \n")
        except OSError:
            continue
        if "jetson" in text.lower() or "orin" in text.lower():
            return text
    if Path("/etc/nv_tegra_release").exists():
        return "NVIDIA Jetson (model unknown)"
    return None


def gpu_info() -> dict | None:
    """The first NVIDIA GPU's name and compute capability, or None where there is none."""
    jetson = jetson_model()
    try:
        import torch  # optional

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(0)
            return {"name": torch.cuda.get_device_name(0), "compute_capability": f"{major}.{minor}", "jetson": jetson}
    except Exception:  # torch absent on a deployed robot, or CUDA broken: fall through
        pass
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                name, cc = (s.strip() for s in out.stdout.splitlines()[0].split(",", 1))
                return {"name": name, "compute_capability": cc, "jetson": jetson}
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
    if jetson:
        return {"name": jetson, "compute_capability": None, "jetson": jetson}
    return None


def ort_providers() -> list[str]:
    try:
        import onnxruntime as ort
    except Exception:
        return []
    return list(ort.get_available_providers())


def backends() -> dict[str, dict]:
    """Each inference backend and whether it is usable here, with the reason when it is not."""
    providers = ort_providers()
    has_ort = _version("onnxruntime") is not None
    from panoedge.runtime.trt_runner import trt_available

    trt_ok, trt_why = trt_available()
    torch_v = _version("torch")

    def entry(ok: bool, why: str) -> dict:
        return {"usable": ok, "why": "" if ok else why}

    return {
        "ort-cpu": entry(has_ort, "onnxruntime is not installed"),
        "ort-cuda": entry("CUDAExecutionProvider" in providers, "no CUDAExecutionProvider (install onnxruntime-gpu on a CUDA machine)"),
        "ort-trt": entry("TensorrtExecutionProvider" in providers, "no TensorrtExecutionProvider in onnxruntime"),
        "trt": entry(trt_ok, trt_why),
        "torch": entry(bool(torch_v), "torch is not installed (pip install 'panoedge[train]')"),
    }


def machine_info(backends_used: list[str] | None = None) -> dict:
    """The ``machine`` block of every report: CPU, cores, GPU, OS and versions."""
    versions = {
        "python": platform.python_version(),
        "panoedge": _version("panoedge"),
        "numpy": _version("numpy"),
        "opencv": _version("cv2"),
        "onnxruntime": _version("onnxruntime"),
        "onnx": _version("onnx"),
        "torch": _version("torch") if "torch" in sys.modules or backends_used is None else None,
        "tensorrt": _version("tensorrt") if "tensorrt" in sys.modules or backends_used is None else None,
    }
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "arch": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "gpu": gpu_info() if backends_used is None or any(b != "ort-cpu" for b in backends_used) else None,
        "versions": {k: v for k, v in versions.items() if v is not None},
    }


def conv_gflops(seconds: float = 0.5) -> float:
    """This CPU's speed on the kind of work distillation spends its time on, in GFLOP/s.

    Runs a 3x3 convolution, 256 to 256 channels, forward on a ``(12, 256, 24, 32)`` batch with
    the current torch threads for about ``seconds`` (2 FLOP per multiply-add). Distillation
    reports carry it, so wall times measured on machines of different speed can be compared.
    """
    import time

    import torch

    x = torch.randn(12, 256, 24, 32)
    conv = torch.nn.Conv2d(256, 256, 3, padding=1, bias=False).eval()
    flops = 2.0 * x.shape[0] * 24 * 32 * 256 * 256 * 9
    with torch.no_grad():
        conv(x)
        n, t0 = 0, time.perf_counter()
        while n < 2 or time.perf_counter() - t0 < seconds:
            conv(x)
            n += 1
        dt = time.perf_counter() - t0
    return flops * n / dt / 1e9


def _cuda_python_version() -> str | None:
    """cuda-python's version (``cuda.bindings`` from 12.6, the ``cuda`` package before), or None."""
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover - Python < 3.8
        return None
    for dist in ("cuda-python", "cuda-bindings"):
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    return None


def _cuda_binding() -> str | None:
    from panoedge.runtime.cuda_binding import binding_name

    return binding_name()


def doctor_report() -> dict:
    """Everything ``panoedge doctor`` prints, as one dict."""
    import cv2

    return {
        "machine": machine_info(),
        "versions": {
            "python": sys.version.split()[0],
            "numpy": _version("numpy"),
            "opencv": cv2.__version__,
            "opencv_threads": cv2.getNumThreads(),
            "torch": _version("torch"),
            "onnx": _version("onnx"),
            "onnxruntime": _version("onnxruntime"),
            "tensorrt": _version("tensorrt"),
            "cuda-python": _cuda_python_version(),
            "pycuda": _version("pycuda"),
        },
        "onnxruntime_providers": ort_providers(),
        "gpu": gpu_info(),
        "jetson": jetson_model(),
        "cuda_binding": _cuda_binding(),
        "backends": backends(),
    }
