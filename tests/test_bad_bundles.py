"""Tampered bundles: escaping paths, unhashed references, links out, malformed manifests, signatures.

The bundles here are made by hand (a few small files and a manifest hashing them) so the
checks run in milliseconds; ``bundle verify`` and ``run`` share :func:`verify_bundle`, and both
are exercised.
"""

from __future__ import annotations

import json
import os
import sys
from io import StringIO
from pathlib import Path

import pytest

from panoedge.errors import DataError
from panoedge.home import sha256_file, write_json
from panoedge.runtime.manifest import SCHEMA, bundle_files

pytest.importorskip("cryptography")


def _cli(args) -> tuple[int, str, str]:
    from panoedge.cli import main

    out, err, old = StringIO(), StringIO(), (sys.stdout, sys.stderr)
    sys.stdout, sys.stderr = out, err
    try:
        with pytest.raises(SystemExit) as e:
            main(args)
            raise SystemExit(0)
    finally:
        sys.stdout, sys.stderr = old
    return e.value.code, out.getvalue(), err.getvalue()


def rehash(folder: Path, manifest: dict) -> dict:
    """What an attacker (or a build) does: hash every file into the manifest and write it."""
    manifest["files"] = {rel: {"sha256": sha256_file(folder / rel), "bytes": (folder / rel).stat().st_size}
                         for rel in bundle_files(folder) if (folder / rel).is_file() and not (folder / rel).is_symlink()}
    write_json(folder / "manifest.json", manifest)
    return manifest


def make_bundle(folder: Path) -> dict:
    folder.mkdir(parents=True)
    (folder / "model.fp32.onnx").write_bytes(b"not really onnx, verify does not parse models")
    (folder / "model.int8.onnx").write_bytes(b"int8")
    write_json(folder / "classes.json", {"classes": ["wall", "floor"], "colors": [[1, 2, 3], [4, 5, 6]]})
    write_json(folder / "preprocess.json", {"scale": 255.0, "mean": [0.5] * 3, "std": [0.25] * 3,
                                            "layout": "NCHW", "color": "RGB"})
    manifest = {"schema": SCHEMA, "target": {"name": "cpu", "backend": "ort-cpu", "precision": "int8"},
                "model": {"name": "pano-nano", "num_classes": 2, "source": "x"},
                "input": {"name": "image", "dtype": "float32", "shape": [1, 3, 32, 64]}, "outputs": [{"name": "seg"}],
                "models": {"fp32": "model.fp32.onnx", "int8": "model.int8.onnx"},
                "classes": "classes.json", "preprocess": "preprocess.json", "rig": None}
    return rehash(folder, manifest)


@pytest.fixture
def bundle(tmp_path) -> Path:
    make_bundle(tmp_path / "b")
    return tmp_path / "b"


def test_a_clean_bundle_passes_verify_and_loads(bundle):
    from panoedge.runtime import load_bundle, verify_bundle

    rep = verify_bundle(bundle)
    assert rep.ok and rep.signature == "unsigned", rep
    b = load_bundle(bundle)
    assert b.classes == ["wall", "floor"] and b.hw == (32, 64)
    assert b.model_path("int8") == bundle / "model.int8.onnx"


def test_paths_out_of_the_bundle_are_refused_by_verify_and_run(bundle, tmp_path):
    from panoedge.runtime import load_bundle, verify_bundle

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "evil.onnx").write_bytes(b"evil")
    m = json.loads((bundle / "manifest.json").read_text())
    m["models"]["int8"] = "../outside/evil.onnx"
    write_json(bundle / "manifest.json", m)
    for problems in (verify_bundle(bundle).problems,):
        assert any("models.int8 '../outside/evil.onnx': not hashed" in p for p in problems), problems
    with pytest.raises(DataError, match="refusing the bundle"):
        load_bundle(bundle)
    # hashing the outside file into `files` does not help: the path itself is refused, the file never read
    m["files"]["../outside/evil.onnx"] = {"sha256": sha256_file(outside / "evil.onnx"), "bytes": 4}
    m["files"]["/etc/hostname"] = {"sha256": "0" * 64, "bytes": 1}
    write_json(bundle / "manifest.json", m)
    problems = verify_bundle(bundle).problems
    assert "../outside/evil.onnx: not a relative path inside the bundle" in problems
    assert "/etc/hostname: not a relative path inside the bundle" in problems
    code, _, err = _cli(["bundle", "verify", str(bundle)])
    assert code == 3 and err.count("\n") == 1 and "not a relative path inside the bundle" in err


def test_symlinks_out_of_the_bundle_are_refused(bundle, tmp_path):
    from panoedge.runtime import load_bundle, verify_bundle

    secret = tmp_path / "secret.json"
    secret.write_text('{"classes": ["x"], "colors": [[0, 0, 0]]}')
    m = json.loads((bundle / "manifest.json").read_text())
    (bundle / "classes.json").unlink()
    os.symlink(secret, bundle / "classes.json")
    m["files"]["classes.json"] = {"sha256": sha256_file(secret), "bytes": secret.stat().st_size}  # hashes match
    write_json(bundle / "manifest.json", m)
    assert "classes.json: a symbolic link (bundles hold plain files only)" in verify_bundle(bundle).problems
    with pytest.raises(DataError, match="symbolic link"):
        load_bundle(bundle)
    os.symlink(tmp_path, bundle / "engines")  # even the unhashed engines/ may not lead out
    assert any("engines" in p and "symbolic link" in p for p in verify_bundle(bundle).problems)


def test_added_changed_and_unlisted_files_are_problems(bundle):
    from panoedge.runtime import verify_bundle

    (bundle / "model.int8.onnx").write_bytes(b"INT8")
    (bundle / "extra.py").write_text("print('hi')\n")
    problems = verify_bundle(bundle).problems
    assert "model.int8.onnx: sha256 differs from the manifest (the file was changed)" in problems
    assert "extra.py: not listed in the manifest (added after the build)" in problems


@pytest.mark.parametrize("change", [
    lambda m: m.pop("files"),
    lambda m: m.update(files=[]),
    lambda m: m.update(files={"a": {"sha256": "xyz", "bytes": 1}}),
    lambda m: m.update(models={"int8": 3}),
    lambda m: m.pop("input"),
    lambda m: m.update(input={"name": "image", "shape": [1, 3, 0, "64"]}),
    lambda m: m.update(target="cpu"),
    lambda m: m.update(classes=None),
    lambda m: m.update(schema="panoedge.bundle/0"),
])
def test_malformed_manifest_is_one_line(bundle, change):
    m = json.loads((bundle / "manifest.json").read_text())
    change(m)
    write_json(bundle / "manifest.json", m)
    for args in (["bundle", "verify", str(bundle)], ["bundle", "info", str(bundle)],
                 ["run", str(bundle), "--duration", "1"]):
        code, _, err = _cli(args)
        assert code == 3 and err.startswith("panoedge: error: ") and err.count("\n") == 1, (args, err)
        assert "manifest.json" in err


def test_manifest_that_is_not_json_or_has_nan_is_one_line(bundle):
    for text in ("{not json", '{"schema": NaN}', "[]", '{"a": ' * 200 + "1" + "}" * 200):
        (bundle / "manifest.json").write_text(text)
        code, _, err = _cli(["bundle", "verify", str(bundle)])
        assert code == 3 and err.count("\n") == 1 and "manifest.json" in err, err


def test_signed_bundle_verifies_and_any_change_is_refused(bundle, tmp_path):
    from panoedge.runtime import load_bundle, verify_bundle
    from panoedge.runtime.bundle import sign_bundle
    from panoedge.runtime.signing import generate_keypair

    keys = generate_keypair(tmp_path / "keys")
    priv, pub = keys.private, keys.public
    assert oct(priv.stat().st_mode & 0o777) == "0o600"
    other_pub = generate_keypair(tmp_path / "other").public
    with pytest.raises(DataError, match="manifest.sig: missing"):  # unsigned but a trusted key is required
        load_bundle(bundle, trusted_key=pub)
    sign_bundle(bundle, priv)
    assert verify_bundle(bundle, trusted_key=pub).signature == "verified"
    assert verify_bundle(bundle).signature.startswith("present, not checked")
    load_bundle(bundle, trusted_key=pub)
    assert "signature does not match" in " ".join(verify_bundle(bundle, trusted_key=other_pub).problems)
    # changed after signing, manifest re-hashed by the attacker: hashes agree, the signature does not
    (bundle / "model.int8.onnx").write_bytes(b"evil int8")
    rehash(bundle, json.loads((bundle / "manifest.json").read_text()))
    assert verify_bundle(bundle).ok
    with pytest.raises(DataError, match="signature does not match"):
        load_bundle(bundle, trusted_key=pub)
    code, _, err = _cli(["run", str(bundle), "--trusted-key", str(pub), "--duration", "1"])
    assert code == 3 and "signature does not match" in err and err.count("\n") == 1
    code, _, err = _cli(["bundle", "verify", str(bundle), "--trusted-key", str(pub)])
    assert code == 3 and "signature does not match" in err
    code, out, _ = _cli(["bundle", "keygen", "--out", str(tmp_path / "k3")])
    assert code == 0 and "panoedge-signing.pub" in out
    code, _, err = _cli(["bundle", "verify", str(bundle), "--trusted-key", str(tmp_path / "k3" / "panoedge-signing.key")])
    assert code == 3 and "not a readable PEM public key" in err


def test_signing_needs_the_extra_named_early(monkeypatch, bundle, tmp_path):
    from panoedge.extras import MissingExtraError
    from panoedge.runtime import verify_bundle

    monkeypatch.setitem(sys.modules, "cryptography", None)  # as if not installed
    with pytest.raises(MissingExtraError, match=r'pip install "panoedge\[sign\]"'):
        verify_bundle(bundle, trusted_key=tmp_path / "k.pub")


def test_build_with_a_bad_signing_key_fails_before_any_work(tmp_path):
    from panoedge.deploy.bundle import build_bundle

    (tmp_path / "not-a-key.pem").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(DataError, match="not a readable unencrypted PEM private key"):
        build_bundle(tmp_path / "missing-model.onnx", "cpu", None, tmp_path / "out", sign=tmp_path / "not-a-key.pem")
    assert not (tmp_path / "out").exists()
