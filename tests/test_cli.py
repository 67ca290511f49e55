"""The command line: help, doctor, cache, error mapping."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from panoedge.cli import app

runner = CliRunner()


def run_cli(*args, env=None):
    """Run ``panoedge`` in a subprocess, as a user would (the console entry point)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-c", "from panoedge.cli import main; main()", *args],
                          capture_output=True, text=True, env=full_env, timeout=300)


def test_help_lists_every_command_with_one_line_help():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for cmd in ("demo", "doctor", "cache", "synth", "bench"):
        assert cmd in res.output


def test_doctor_reports_versions_and_backends(tmp_path):
    out = tmp_path / "doctor.json"
    res = runner.invoke(app, ["doctor", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "onnxruntime" in res.output and "ort-cpu" in res.output
    rep = json.loads(out.read_text())
    assert rep["schema"] == "panoedge.doctor/1"
    assert rep["backends"]["ort-cpu"]["usable"] is True
    assert "CPUExecutionProvider" in rep["onnxruntime_providers"]
    assert rep["machine"]["cores"] >= 1


def test_cache_shows_and_clears(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("PANOEDGE_HOME", str(home))
    (home / "synth" / "abc").mkdir(parents=True)
    (home / "synth" / "abc" / "x.bin").write_bytes(b"0" * 2048)
    res = runner.invoke(app, ["cache"])
    assert res.exit_code == 0 and "synth" in res.output and "2.0 KiB" in res.output
    res = runner.invoke(app, ["cache", "--clear", "--kind", "synth"])
    assert res.exit_code == 0 and not (home / "synth").exists()
    res = runner.invoke(app, ["cache", "--kind", "nope"])
    assert res.exit_code != 0


def test_library_errors_are_one_line_with_nonzero_exit(tmp_path):
    res = run_cli("synth", str(tmp_path / "x"), "--size", "100x300")
    assert res.returncode == 2
    lines = [line for line in res.stderr.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("panoedge: error:") and "W == 2*H" in lines[0]
    assert "Traceback" not in res.stderr


def test_debug_env_shows_the_traceback(tmp_path):
    res = run_cli("synth", str(tmp_path / "x"), "--family", "moon", env={"PANOEDGE_DEBUG": "1"})
    assert res.returncode != 0 and "Traceback" in res.stderr and "UsageError" in res.stderr


def test_bench_synth_reports_cases_and_ratios(tmp_path):
    out = tmp_path / "b.json"
    res = runner.invoke(app, ["bench", "synth", "--size", "16x32", "--repeat", "2", "--json", str(out)])
    assert res.exit_code == 0, res.output
    rep = json.loads(out.read_text())
    assert rep["schema"] == "panoedge.bench/1" and rep["command"].startswith("panoedge")
    assert set(rep["cases"]) == {"indoor", "outdoor", "single_plane"}
    assert rep["ratios"]["indoor_over_single_plane"] > 0
    assert {"min", "median", "p99"} <= set(rep["cases"]["indoor"]["latency_ms"])


def test_models_lists_students_by_size(tmp_path):
    out = tmp_path / "m.json"
    res = runner.invoke(app, ["models", "--json", str(out)])
    assert res.exit_code == 0, res.output
    names = [r["name"] for r in json.loads(out.read_text())["students"]]
    assert names == ["pano-nano", "pano-small", "pano-base"]
    assert res.output.index("pano-nano") < res.output.index("pano-base")


def test_module_entry_point_runs_the_cli_only_as_main():
    """Worker processes started with spawn import ``__main__`` again as ``__mp_main__``: that must not run the CLI."""
    import runpy

    runpy.run_module("panoedge.cli.__main__", run_name="__mp_main__")  # returns: nothing parsed, nothing exited
    with pytest.raises(SystemExit):
        runpy.run_module("panoedge.cli.__main__", run_name="__main__")
