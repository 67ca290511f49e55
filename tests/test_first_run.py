"""What a new user meets first: optional packages named before any work, progress in log files,
shareable outputs, a wheel that carries every preset, and the CLI's common spellings."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLKIT = ROOT / "toolkit"

BLOCKED_MAIN = r"""
import sys
blocked = set(sys.argv[1].split(","))

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, Block())
from panoedge.cli import main
main(sys.argv[2:])
"""


def _run_blocked(blocked: str, *args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PANOEDGE_HOME": str(home), "PYTHONPATH": str(TOOLKIT)}
    env.pop("PANOEDGE_DEBUG", None)
    return subprocess.run([sys.executable, "-c", BLOCKED_MAIN, blocked, *args], capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.mark.parametrize("blocked,args,extra", [
    ("onnx", ["demo", "--out", "OUT"], "train"),
    ("torch", ["distill", "--out", "OUT"], "train"),
    ("torch", ["teacher", "train", "--data", "synth:indoor", "--out", "OUT"], "train"),
    ("onnx", ["quantize", "m.onnx", "--calib", "synth:indoor", "--out", "OUT"], "train"),
    ("transformers", ["eval", "hf:some/model", "--data", "synth:indoor"], "hf"),
    ("zmq", ["run", "BUNDLE", "--sink", "zmq://127.0.0.1:5555", "--duration", "1"], "live"),
])
def test_a_missing_optional_package_is_one_line_naming_the_extra_before_any_work(tmp_path, blocked, args, extra):
    out = tmp_path / "out"
    args = [str(out) if a == "OUT" else a for a in args]
    t0 = time.perf_counter()
    res = _run_blocked(blocked, *args, home=tmp_path / "home")
    assert res.returncode == 4, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert f'pip install "panoedge[{extra}]"' in lines[0] and lines[0].startswith("panoedge: error: panoedge ")
    assert not out.exists() and not (tmp_path / "home").exists(), "nothing may be written before the check"
    assert time.perf_counter() - t0 < 60  # generous: a subprocess start, not a training run


def test_a_module_not_found_deep_in_a_command_is_mapped_to_its_extra():
    from panoedge.extras import MissingExtraError, missing_extra_error

    err = missing_extra_error(ModuleNotFoundError("No module named 'onnxslim'", name="onnxslim"), "panoedge export")
    assert isinstance(err, MissingExtraError) and 'pip install "panoedge[train]"' in str(err)
    assert "pycuda" in str(missing_extra_error(ModuleNotFoundError("x", name="pycuda.driver"), "panoedge run"))
    assert missing_extra_error(ModuleNotFoundError("x", name="not_ours"), "x") is None  # a bug keeps its traceback


def test_extras_table_matches_pyproject():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    from panoedge.extras import EXTRAS

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for name in EXTRAS:
        assert name in declared, f"panoedge.extras names [{name}], which pyproject.toml does not declare"


def test_progress_writes_plain_timed_lines_when_not_a_terminal(monkeypatch):
    from panoedge.progress import tqdm

    monkeypatch.setenv("PANOEDGE_PROGRESS_INTERVAL", "0.05")
    buf = io.StringIO()
    for _ in tqdm(range(6), desc="teacher train", unit="step", file=buf):
        time.sleep(0.03)
    lines = buf.getvalue().splitlines()
    assert "\r" not in buf.getvalue() and len(lines) >= 3
    assert lines[0].startswith("panoedge: teacher train 0/6")
    assert lines[-1].startswith("panoedge: teacher train 6/6 (100%)") and "step/s" in lines[-1] and "elapsed" in lines[-1]
    assert any("left" in ln for ln in lines[1:])


def test_progress_is_a_bar_on_a_terminal():
    from panoedge.progress import tqdm

    class Tty(io.StringIO):
        def isatty(self):
            return True

    buf = Tty()
    for _ in tqdm(range(3), desc="x", file=buf):
        pass
    assert "\r" in buf.getvalue()  # tqdm's own bar, redrawn in place


def test_outputs_have_the_usual_permissions(tmp_path):
    from panoedge.home import atomic_dir, atomic_write_bytes, umask

    old = os.umask(0o022)
    try:
        assert umask() in (0o022, os.umask(0o022))  # read once per process; the default in most shells
        f = atomic_write_bytes(tmp_path / "a.json", b"{}")
        with atomic_dir(tmp_path / "bundle") as tmp:
            (tmp / "x").write_text("x")
    finally:
        os.umask(old)
    mask = umask()
    assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~mask
    assert stat.S_IMODE((tmp_path / "bundle").stat().st_mode) == 0o777 & ~mask


@pytest.mark.slow
def test_a_wheel_carries_every_preset_profile_class_map_and_page(tmp_path):
    pytest.importorskip("setuptools")
    import shutil

    src = tmp_path / "src"  # a copy: setuptools builds in SRC/build, which must not go stale in the checkout
    shutil.copytree(TOOLKIT, src / "toolkit", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    wheels = tmp_path / "wheels"
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                          "-q", "-w", str(wheels), str(src)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    (whl,) = wheels.glob("panoedge-*.whl")
    site = tmp_path / "site"
    res = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target",
                          str(site), str(whl)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    env = {k: v for k, v in os.environ.items() if k not in ("PANOEDGE_RIGS", "PANOEDGE_TARGETS")}
    env["PYTHONPATH"] = str(site)  # the wheel's panoedge, not the source tree
    code = ("import json, panoedge, sys; from panoedge.cli import main; print(json.dumps(panoedge.__file__)); "
            "main(['rig', 'list'])")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    first, *rows = res.stdout.splitlines()
    assert json.loads(first).startswith(str(site))
    listed = {r.split()[0] for r in rows}
    shipped = {p.stem for p in (TOOLKIT / "panoedge/stitch/rigs").glob("*.yaml")}
    assert shipped and shipped | {"generic"} == listed
    installed = site / "panoedge"
    for rel in ("deploy/targets", "models/teachers/classmaps"):
        src = {p.name for p in (TOOLKIT / "panoedge" / rel).iterdir() if p.is_file() and not p.name.endswith(".py")}
        assert src and src <= {p.name for p in (installed / rel).iterdir()}, rel
    assert (installed / "live/web_page.html").is_file()


def test_every_rig_option_takes_a_preset_name(tmp_path, monkeypatch):
    from panoedge.stitch.presets import preset_names, resolve_rig

    name = next(n for n in preset_names() if n != "generic")
    assert resolve_rig(name).name
    user = tmp_path / "calibration" / "rigs"
    user.mkdir(parents=True)
    src = Path(__import__("panoedge.stitch.presets", fromlist=["x"]).preset_path(name))
    (user / "my_robot.yaml").write_text(src.read_text())
    monkeypatch.chdir(tmp_path)
    assert "my_robot" in preset_names() and resolve_rig("my_robot").lenses


def test_cli_version_and_plain_help():
    from panoedge.cli import main

    res = subprocess.run([sys.executable, "-c", "from panoedge.cli import main; main()", "--version"],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(TOOLKIT)}, timeout=60)
    assert res.returncode == 0 and res.stdout.startswith("panoedge ")
    env = {**os.environ, "PYTHONPATH": str(TOOLKIT), "COLUMNS": "80"}
    res = subprocess.run([sys.executable, "-c", "from panoedge.cli import main; main()", "run", "--help"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0
    assert "<str>" not in res.stdout and "<bool>" not in res.stdout and "…" not in res.stdout
    assert "--warmup-seconds" in res.stdout and "synth://indoor|outdoor?fps=30&size=1024x2048" in res.stdout
    del main


def test_old_option_spellings_still_work_and_numbers_are_checked(tmp_path):
    from typer.testing import CliRunner

    from panoedge.cli.app import app
    from panoedge.errors import UsageError
    import panoedge.cli  # noqa: F401  (registers the commands)

    r = CliRunner().invoke(app, ["synth", str(tmp_path / "old"), "--n", "1", "--size", "16x32"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["synth", "--out", str(tmp_path / "new"), "--count", "1", "--size", "16x32"])
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "old" / "rgb").iterdir())) == len(list((tmp_path / "new" / "rgb").iterdir())) == 1
    for args in (["run", "x.onnx", "--duration", "-5"], ["run", "x.onnx", "--threads", "-3"],
                 ["run", "x.onnx", "--queue", "0"], ["run", "x.onnx", "--precision", "int4"],
                 ["stitch", "f.jpg", "--rig", "generic", "--out", "o.jpg", "--size", "0x0"],
                 ["stitch", "f.jpg", "--rig", "generic", "--out", "o.jpg", "--size", "100000x200000"],
                 ["quantize", "m.onnx", "--calib", "synth:indoor", "--out", "q.onnx", "--every", "0"],
                 ["quantize", "m.onnx", "--calib", "synth:indoor", "--out", "q.onnx", "--rig", "generic"]):
        r = CliRunner().invoke(app, args)
        assert isinstance(r.exception, UsageError), (args, r.output, r.exception)
