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
from dataclasses import dataclass
from pathlib import Path

from panoedge.results import Record, Result
from panoedge.versions import package_version


_version = package_version
DOCTOR_SCHEMA = "panoedge.doctor/1"
#: Seconds ``nvidia-smi`` may take to answer before the GPU counts as absent (a wedged driver hangs it).
NVIDIA_SMI_TIMEOUT_S = 10
#: What ``panoedge doctor`` says for an ONNX Runtime backend whose execution provider is missing.
ORT_MISSING = {"ort-cpu": "onnxruntime is not installed",
               "ort-cuda": "no CUDAExecutionProvider (install onnxruntime-gpu on a CUDA machine)",
               "ort-trt": "no TensorrtExecutionProvider in onnxruntime"}


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
                                 capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S)
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


@dataclass(frozen=True)
class BackendStatus(Record):
    """Whether one inference backend can run here, and why not."""

    usable: bool
    why: str


def backends() -> dict[str, BackendStatus]:
    """Each inference backend of the runtime's registry, and torch, with whether it is usable here.

    The runtime backends ask the same probe as backend selection
    (:func:`panoedge.runtime.registry.backend_available`), so ``panoedge doctor`` and a bundle's
    runner agree.
    """
    from panoedge.runtime.registry import backend_available, backend_names

    out = {}
    for name in backend_names():
        if name == "torch":  # registered by panoedge.deploy when imported; reported below in any case
            continue
        ok, why = backend_available(name)
        out[name] = BackendStatus(usable=ok, why="" if ok else ORT_MISSING.get(name, why))
    torch_ok = bool(_version("torch"))
    out["torch"] = BackendStatus(usable=torch_ok, why="" if torch_ok else "torch is not installed (pip install 'panoedge[train]')")
    return out


@dataclass(frozen=True)
class MachineInfo(Record):
    """The ``machine`` block of every report: CPU, cores, GPU, OS and versions."""

    cpu: str
    cores: int | None
    arch: str
    os: str
    gpu: dict | None
    versions: dict[str, str]

    @classmethod
    def from_dict(cls, d: dict) -> "MachineInfo":
        return cls(cpu=d["cpu"], cores=d["cores"], arch=d["arch"], os=d["os"], gpu=d["gpu"], versions=dict(d["versions"]))

    def version(self, package: str) -> str | None:
        """The recorded version of ``package`` (``None`` where it was not installed or not recorded)."""
        return self.versions.get(package)

    def format(self) -> str:
        return f"{self.cpu} ({self.cores} cores, {self.arch}, {self.os})"


def machine(backends_used: list[str] | None = None) -> MachineInfo:
    """This machine; ``backends_used`` limits the GPU probe and torch/TensorRT versions to what the run used."""
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
    return MachineInfo(
        cpu=cpu_model(),
        cores=os.cpu_count(),
        arch=platform.machine(),
        os=f"{platform.system()} {platform.release()}",
        gpu=gpu_info() if backends_used is None or any(b != "ort-cpu" for b in backends_used) else None,
        versions={k: v for k, v in versions.items() if v is not None},
    )


def machine_info(backends_used: list[str] | None = None) -> dict:
    """:func:`machine` as the JSON block reports embed."""
    return machine(backends_used).to_dict()


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


@dataclass(frozen=True)
class GpuInfo(Record):
    """The first NVIDIA GPU (:func:`gpu_info`)."""

    name: str
    compute_capability: str | None
    jetson: str | None


@dataclass(frozen=True)
class DoctorResult(Result):
    """Everything ``panoedge doctor`` prints."""

    SCHEMA = DOCTOR_SCHEMA
    machine: MachineInfo
    versions: dict[str, str | None]
    onnxruntime_providers: tuple[str, ...]
    gpu: GpuInfo | None
    jetson: str | None
    cuda_binding: str | None
    backends: dict[str, BackendStatus]

    def format(self) -> str:
        gpu = f"{self.gpu.name} (sm {self.gpu.compute_capability})" if self.gpu else "none"
        lines = [f"machine      {self.machine.format()}"]
        lines += [f"{k:<12} {v if v is not None else 'not installed'}" for k, v in self.versions.items()]
        lines += [f"{'ort EPs':<12} {', '.join(self.onnxruntime_providers) or 'none'}",
                  f"{'gpu':<12} {gpu}",
                  f"{'jetson':<12} {self.jetson or 'no'}",
                  f"{'cuda binding':<12} {self.cuda_binding or 'none'} (for the trt backend)",
                  "backends:"]
        lines += [f"  {name:<9} {'yes' if b.usable else 'no  (' + b.why + ')'}" for name, b in self.backends.items()]
        return "\n".join(lines)


def doctor_report() -> DoctorResult:
    """Everything ``panoedge doctor`` prints."""
    import cv2

    gpu = gpu_info()
    return DoctorResult(
        machine=machine(),
        versions={
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
        onnxruntime_providers=tuple(ort_providers()),
        gpu=GpuInfo(name=gpu["name"], compute_capability=gpu["compute_capability"], jetson=gpu["jetson"]) if gpu else None,
        jetson=jetson_model(),
        cuda_binding=_cuda_binding(),
        backends=backends(),
    )
