"""panoedge demo end to end on tiny settings: every stage runs, demo.json has its numbers, a rerun is cached."""

from __future__ import annotations

import json
import threading
import urllib.request
from dataclasses import replace

import pytest

from panoedge.errors import UsageError

STAGES = ["synth", "teacher", "distill", "quantize", "build", "live"]


def tiny_config(**kw):
    """``panoedge demo --quick``'s settings, with the viewer on any free port and a shorter live run."""
    from panoedge.demo import quick_config

    return quick_config(**{"duration_s": 2.0, "port": 0, **kw})


def _watch_viewer(lines: list[str], pages: dict) -> callable:
    """A log callback that, when the viewer announces its address, fetches its page and stats."""
    def fetch(url: str) -> None:
        for path in ("", "stats.json"):
            with urllib.request.urlopen(url + path, timeout=10) as r:
                pages[path] = (r.status, r.read())

    def log(msg: str) -> None:
        lines.append(msg)
        if "web viewer: " in msg:
            url = msg.split("web viewer: ", 1)[1].split()[0]
            t = threading.Thread(target=fetch, args=(url,), daemon=True)
            t.start()
            pages["thread"] = t

    return log


def test_demo_runs_every_stage_then_reuses_the_cache(tmp_path):
    import torch

    from panoedge.demo import run_demo
    from panoedge.runtime.bundle import verify_bundle

    torch.set_num_threads(1)
    out = tmp_path / "demo"
    lines, pages = [], {}
    rec = run_demo(out, tiny_config(), log=_watch_viewer(lines, pages), progress=False).to_dict()
    assert rec["complete"]
    on_disk = json.loads((out / "demo.json").read_text())
    assert on_disk["schema"] == "panoedge.demo/1" and on_disk["stages"] == rec["stages"]
    assert [s["name"] for s in rec["stages"]] == STAGES
    assert all(s["status"] == "ran" and s["seconds"] > 0 for s in rec["stages"]), rec["stages"]
    f = rec["figures"]
    assert 0 <= f["distill"]["student_miou_area"] <= 100 and 0 <= f["distill"]["teacher_tangent_miou_area"] <= 100
    assert f["distill"]["n_images"] == 2
    assert 0 <= f["quantize"]["int8_miou_area"] <= 100 and f["quantize"]["int8_ms"] > 0
    live = f["live"]
    assert live["fps"] > 0 and live["frames_delivered"] > 0 and live["dropped"] >= 0
    assert 0 < live["latency_ms_p50"] <= live["latency_ms_p99"] and live["erp_hw"] == [32, 64]
    assert live["live_miou_area"] is not None and live["offline_miou_area"] is not None
    assert (out / "preview.png").is_file() and (out / "live.json").is_file()
    assert verify_bundle(out / "bundle").ok and f["build"]["int8_matches_quantize_stage"]
    pages["thread"].join(15)
    assert pages[""][0] == 200 and b"panoedge live" in pages[""][1], "the viewer served its page during the run"
    assert "fps" in json.loads(pages["stats.json"][1])

    again = run_demo(out, tiny_config(), progress=False).to_dict()
    status = {s["name"]: s["status"] for s in again["stages"]}
    assert status == {**{s: "cached" for s in STAGES[:-1]}, "live": "ran"}
    assert again["figures"]["distill"] == f["distill"] and again["figures"]["quantize"] == f["quantize"]
    assert "reused" in again["stages"][-1]["detail"]


def test_demo_fails_early_and_clearly(tmp_path):
    import socket

    from panoedge.demo import run_demo

    with pytest.raises(UsageError, match="unknown family 'moon'"):
        run_demo(tmp_path, tiny_config(family="moon"))
    with pytest.raises(UsageError, match="--duration"):
        run_demo(tmp_path, tiny_config(duration_s=0))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(UsageError, match="--port"):
            run_demo(tmp_path, replace(tiny_config(), port=busy.getsockname()[1]))
    assert not (tmp_path / "demo.json").exists(), "nothing ran"
