"""Hostile files: YAML/JSON bombs and bad values, planted pickles, decompression bombs.

Each test replays a finding of issue 15 on tiny inputs and checks that the answer is one
clear error (naming the file and the field) and that nothing was executed or decoded.
"""

from __future__ import annotations

import ast
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from panoedge.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[1]
BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def _cli(args):
    import panoedge.cli  # noqa: F401  (registers every command)
    from panoedge.cli import main

    import sys
    from io import StringIO

    # main() maps PanoedgeError to one line and an exit code: call it the way the console script does
    err, old = StringIO(), sys.stderr
    sys.stderr = err
    try:
        with pytest.raises(SystemExit) as e:
            main(args)
    finally:
        sys.stderr = old
    return e.value.code, err.getvalue()


# -- the safe loader ---------------------------------------------------------------------------

def test_yaml_bomb_fails_fast_everywhere(tmp_path):
    from panoedge.distill.config import resolve_config
    from panoedge.stitch.rig import load_rig

    bomb = tmp_path / "rig.yaml"
    bomb.write_text(BOMB)
    for load in (load_rig, resolve_config):
        t0 = time.perf_counter()
        with pytest.raises(ConfigError, match="billion laughs"):
            load(bomb)
        assert time.perf_counter() - t0 < 5  # not a timing assertion on speed: a bomb used to hang for minutes
    many = tmp_path / "aliases.yaml"
    many.write_text("a: &a 1\nb: [" + ", ".join(["*a"] * 500) + "]\n")
    with pytest.raises(ConfigError, match="aliases"):
        load_rig(many)
    deep = tmp_path / "deep.yaml"
    deep.write_text("[" * 500 + "]" * 500)
    with pytest.raises(ConfigError, match="nested"):
        load_rig(deep)


def test_loader_refuses_code_tags_nan_duplicates_and_oversize(tmp_path, monkeypatch):
    from panoedge.safe_load import load_file, load_json

    cases = {"tag.yaml": "a: !!python/object/apply:os.system ['touch marker']\n", "nan.yaml": "a: .nan\n",
             "inf.toml": "a = inf\n", "dup.yaml": "a: 1\na: 2\n", "nan.json": '{"a": NaN}',
             "dup.json": '{"a": 1, "a": 2}', "list.json": "[1, 2]"}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ConfigError) as e:
            load_file(tmp_path / name)
        assert str(tmp_path / name) in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "marker").exists()
    big = tmp_path / "big.json"
    big.write_text('{"a": "' + "x" * 5000 + '"}')
    monkeypatch.setenv("PANOEDGE_MAX_CONFIG_BYTES", "1000")
    with pytest.raises(ConfigError, match="larger than 1000 bytes"):
        load_json(big)


def test_distill_config_typos_and_non_booleans_are_refused_with_the_nearest_name(tmp_path):
    from panoedge.distill.config import resolve_config

    for text, match in (("bismap: maybe\n", "bismap: 'maybe': expected true or false"),
                        ("bismap_quantil: 0.1\n", "did you mean 'bismap_quantile'"),
                        ("lr: .inf\n", "lr: inf is not a finite number"),
                        ("steps: 10.5\n", "steps: 10.5: expected an integer"),
                        ("student: 3\n", "student: 3: expected a string"),
                        ("augment: 1\n", "augment: 1: expected true or false")):
        f = tmp_path / "c.yaml"
        f.write_text(text)
        with pytest.raises(ConfigError, match=match):
            resolve_config(f)
    f.write_text("erp_hw: 64x128\nbismap: true\nlr: 1\n")
    cfg = resolve_config(f)
    assert cfg.erp_hw == (64, 128) and cfg.bismap is True and cfg.lr == 1.0


def test_target_profile_typo_names_the_nearest_key(tmp_path):
    from panoedge.deploy.targets import load_target

    text = (ROOT / "toolkit/panoedge/deploy/targets/cpu.toml").read_text().replace("precision =", "precison =")
    (tmp_path / "cpu.toml").write_text(text)
    with pytest.raises(ConfigError, match="precison: unknown key; did you mean 'precision'"):
        load_target(tmp_path / "cpu.toml")


# -- rigs --------------------------------------------------------------------------------------

def _rig_dict() -> dict:
    from panoedge.synth.rig_render import synthetic_rig

    return synthetic_rig(64, seed=0).to_dict()


def _set(d: dict, path: str, value, rename: str | None = None) -> dict:
    *parents, key = path.split(".")
    node = d
    for p in parents:
        node = node["lenses"][int(p[-2])] if p.startswith("lenses") else node[p]
    if rename:
        node[rename] = node.pop(key)
    else:
        node[key] = value
    return d


@pytest.mark.parametrize("path, value, rename, field", [
    ("lenses[0].vignetting", [float("nan"), 0.0, 0.0], None, "lenses[0].vignetting"),
    ("lenses[1].translation_m", [0.0, float("nan"), 0.0], None, "lenses[1].translation_m"),
    ("output_yaw_deg", None, "output_yaw_dg", "output_yaw_dg: unknown key; did you mean 'output_yaw_deg'"),
    ("lenses[0].fov_deg", None, "fov_dg", "lenses[0].fov_dg: unknown key; did you mean 'fov_deg'"),
    ("lenses[0].yaw_deg", float("inf"), None, "lenses[0].yaw_deg"),
    ("name", [1, 2], None, "name: [1, 2]: expected a string"),
])
def test_rig_bad_values_name_file_and_field(tmp_path, path, value, rename, field):
    import yaml

    from panoedge.stitch.rig import load_rig

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_set(_rig_dict(), path, value, rename), sort_keys=False))
    with pytest.raises(ConfigError) as e:
        load_rig(bad)
    assert str(bad) in str(e.value) and field in str(e.value)


def test_cli_stitch_with_a_bomb_rig_is_one_line(tmp_path):
    img = tmp_path / "f.png"
    from panoedge.io import write_rgb

    write_rgb(img, np.zeros((64, 128, 3), np.uint8))
    (tmp_path / "bomb.yaml").write_text(BOMB)
    code, err = _cli(["stitch", str(img), "--rig", str(tmp_path / "bomb.yaml"), "--out", str(tmp_path / "o.png")])
    assert code == 2 and err.count("\n") == 1 and "billion laughs" in err


# -- pickles -----------------------------------------------------------------------------------

class _Evil:
    """Unpickling this calls ``open(marker, "w")``: a marker file proves code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _plant(path: Path, marker: Path) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": {}, "step": 1, "payload": _Evil(marker)}, path)


def test_every_torch_load_in_the_package_is_weights_only():
    """A class-of-problem check: no ``torch.load`` call without ``weights_only=True``."""
    bad = []
    for py in (ROOT / "toolkit/panoedge").rglob("*.py"):
        for node in ast.walk(ast.parse(py.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "load" \
                    and getattr(node.func.value, "id", None) == "torch":
                kw = {k.arg: k.value for k in node.keywords}
                if not (isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True):
                    bad.append(f"{py.relative_to(ROOT)}:{node.lineno}")
    assert not bad, bad


def test_planted_pickles_are_refused_unexecuted(tmp_path):
    from types import SimpleNamespace

    from panoedge.distill import teacher_train, trainer
    from panoedge.distill.config import DistillConfig
    from panoedge.distill.teacher_config import TeacherTrainConfig
    from panoedge.models.checkpoint import load_student

    marker = tmp_path / "marker"
    run = tmp_path / "run"
    _plant(run / "ckpt.pt", marker)
    with pytest.raises(DataError, match="refused: not a plain resume checkpoint"):
        trainer.load_ckpt(run / "ckpt.pt", DistillConfig(), None, None, None, None)
    with pytest.raises(DataError, match="refused: not a plain resume checkpoint"):  # before any label is computed
        trainer.distill(DistillConfig(teacher="builtin:nowhere", device="cpu"), run, progress=False)
    _plant(run / "labels" / "gen001.pt", marker)
    cfg = DistillConfig(teacher="x", rlcc=True)
    with pytest.raises(DataError, match="refused: not a plain label shard"):
        trainer.advance(SimpleNamespace(generation=1), 1, None, cfg, run / "labels", 0, 1, "cpu")
    _plant(tmp_path / "teacher" / "ckpt.pt", marker)
    with pytest.raises(DataError, match="refused: not a plain teacher-training checkpoint"):
        teacher_train._resume_state(tmp_path / "teacher" / "ckpt.pt", TeacherTrainConfig())
    _plant(tmp_path / "student.pt", marker)
    with pytest.raises(DataError, match="refused: not a plain student checkpoint"):
        load_student(tmp_path / "student.pt")
    assert not marker.exists()


def test_resume_checkpoint_round_trips_as_plain_data(tmp_path):
    """The checkpoint the trainer writes (RNG states included) loads under ``weights_only``."""
    import random

    import torch

    from panoedge.distill import trainer
    from panoedge.distill.config import DistillConfig

    net = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(net.parameters())
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    np.random.seed(5)
    random.seed(5)
    trainer.save_ckpt(tmp_path / "ckpt.pt", DistillConfig(), net, net, opt, scaler, 7, 1)
    want = (np.random.random(), random.random())
    np.random.seed(0)
    random.seed(0)
    assert trainer.load_ckpt(tmp_path / "ckpt.pt", DistillConfig(), net, net, opt, scaler) == (7, 1)
    assert (np.random.random(), random.random()) == want


# -- decompression bombs -----------------------------------------------------------------------

def _png_declaring(path: Path, w: int, h: int) -> Path:
    """A ~100-byte PNG whose header declares ``w x h`` RGB pixels (its data would not even fill them)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def test_decompression_bomb_is_refused_from_the_header(tmp_path, monkeypatch):
    from panoedge.image_guard import image_size
    from panoedge.io import read_labels, read_rgb
    from panoedge.live.sources import CorruptFrame, FolderSource

    bomb = _png_declaring(tmp_path / "bomb.png", 40000, 20000)
    assert bomb.stat().st_size < 200 and image_size(bomb) == (40000, 20000)
    for read in (read_rgb, read_labels):
        with pytest.raises(DataError, match="800 MP.*pixel budget"):
            read(bomb)
    src = FolderSource(f"file://{tmp_path}")
    src.open()
    with pytest.raises(CorruptFrame, match="pixel budget"):
        src.read()
    code, err = _cli(["stitch", str(bomb), "--rig", "generic", "--out", str(tmp_path / "o.png")])
    assert code == 3 and "pixel budget" in err and err.count("\n") == 1
    from panoedge.io import write_rgb

    small = write_rgb(tmp_path / "small.png", np.zeros((16, 32, 3), np.uint8))
    assert read_rgb(small).shape == (16, 32, 3)
    monkeypatch.setenv("PANOEDGE_MAX_IMAGE_PIXELS", "100")
    with pytest.raises(DataError, match="PANOEDGE_MAX_IMAGE_PIXELS"):
        read_rgb(small)
