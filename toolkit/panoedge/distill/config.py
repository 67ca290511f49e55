"""The distillation config: every default in one place, file < flags precedence, validated.

:class:`DistillConfig` is frozen; its defaults *are* the embedded default run
(``panoedge distill`` with no options: synthetic indoor world, the built-in teacher, ``pano-small``,
sized to finish in 15 minutes on a 2-core CPU). A config file (YAML or JSON, keys = field names)
overrides the defaults and command-line flags override the file (:func:`resolve_config`).
Problems name the file, the key and the allowed range (:class:`panoedge.errors.ConfigError`).
The resolved config is written into every run folder as ``config.json`` (:func:`write_config`);
its ``teacher`` key is the teacher spec actually used. Importable without torch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from panoedge.errors import ConfigError

SCHEMA = "panoedge.distill_config/1"
COMPONENTS = ("planes", "balance", "pixl", "bismap", "rlcc", "depthg", "consistency")
DEPTH_LOSSES = ("auto", "log_l1", "ssi")
AMP_MODES = ("auto", "off", "bf16")
PSEUDO_FUSIONS = ("tangent", "tangent+erp")
"""Pseudo-label fusions (see ``panoedge.distill.pseudo.FUSIONS``; defined here, torch-free)."""


@dataclass(frozen=True)
class DistillConfig:
    """Everything a distillation run depends on (see the module docstring for precedence).

    Data and teacher: ``data`` is anything :func:`panoedge.data.resolve_data` reads (a folder of
    panoramas, a dataset folder, ``structured3d:PATH`` ..., or ``synth:FAMILY``, rendered with ``synth_n``
    panoramas at ``synth_hw`` when the query does not say; with ``rig``, a dual-fisheye video or
    folder stitched every ``every``-th frame); ``teacher`` a teacher spec, empty for
    the embedded built-in teacher. ``erp_hw`` is the training size (``W == 2H``, multiples of 32);
    ``eval_data`` held-out scenes evaluated at the end (empty: none; ``"auto"``: held-out synthetic
    seeds for ``synth:`` data). Pseudo labels: ``n_patches`` tangent views of ``fov_deg`` at
    ``patch_hw`` per panorama (0/None: the pseudo-label module's defaults), sampled from the
    panorama at ``pseudo_hw`` (None: its own size, the sharpest view the teacher can get) and
    fused at ``erp_hw``; ``pseudo_fusion`` ``tangent+erp`` also mixes in the teacher on the whole
    panorama, weighted by ``cos(latitude)`` (projection fusion). It is off by default because it adds
    a whole-panorama teacher pass per image and its gain at the default budget is within run-to-run
    noise; it is on in ``examples/distill-accurate.yaml``, the longer budget where it pays. Measure it:
    ``panoedge distill --out A`` against ``panoedge distill --config F --out B`` with ``F`` holding
    ``pseudo_fusion: tangent+erp`` (the held-out table of each run); ``class_map`` maps
    teacher classes onto the student's.

    Training: ``steps`` optimiser steps in all, split evenly over ``generations`` of self-training;
    global ``batch`` (split across DDP ranks); AdamW ``lr`` with ``warmup`` and cosine decay; an EMA
    copy with ``ema_decay``. Components (each switchable, ``*_weight`` its loss weight):
    ``planes`` (depth-guided plane check: floor and ceiling labels must sit on the planes the
    teacher's own depth puts them on, :mod:`panoedge.distill.planes`; ``planes_conf``,
    ``planes_tol``, ``planes_sigma``), ``balance`` (class-balanced labels: the teacher's own
    class prior on the training set divided out to the power ``balance_tau``,
    :mod:`panoedge.distill.balance`; ``label_temperature`` < 1 then sharpens them, off at 1
    because the student learns more from the teacher's soft labels than from sharpened ones: measure
    with ``panoedge distill --config F`` for ``label_temperature`` 0.5 and 0.25 in ``F`` against the
    default), ``pixl`` (drift fraction ``pixl_drift``, temperature
    ``pixl_tau``), ``bismap`` (``bismap_components``
    diagonal Gaussians per class, reject below the ``bismap_quantile`` likelihood quantile of
    confident pixels, confident = pseudo confidence >= ``bismap_conf``), ``rlcc`` (new labels weigh
    ``rlcc_momentum``), ``depthg`` (``depthg_points`` farthest points per image),
    ``consistency`` (rotations up to ``cons_tilt_deg`` of tilt, Möbius zoom up to ``cons_zoom``,
    on ``cons_frac`` of the batch). ``n_clusters > 0`` switches on the label-free mode.
    Student classes come from the dataset's ``meta.json``, else the class map's targets, else the
    clusters or the teacher's own classes. ``camera_height_m > 0`` turns a relative depth
    teacher's labels metric: per image, the floor plane where the labels say floor fixes the
    scale (camera height / plane distance, :mod:`panoedge.distill.camera_height`).
    Component switches follow the ablation (``panoedge distill --ablate``, whose table compares each
    component against the baseline; ``--ablate --variants default,-X`` retrains the default without
    ``X``, what a default has to earn): a component is on when it raised the held-out area-weighted
    mIoU beyond run-to-run noise. RLCC is off because, with the built-in teacher, the EMA student's
    labels were worse than the teacher's; BiSMAP is off because its vetting lowered the labels'
    mIoU and the student's (``OUT/ablation.json``: each variant's ``generations`` carry its labels' mIoU).
    With both off, every generation trains on the generation-0 labels and no generation pass is
    run. Spherical consistency is off by default because it cost time without raising the
    student's score at the default budget; the default spends that time on more steps instead
    (the ablation's ``+consistency`` row against ``baseline`` shows both the score and ``train s``). The
    longer ``examples/distill-accurate.yaml`` (more steps, projection fusion, consistency on) is
    the accuracy setting; its figures are in the README.
    """

    teacher: str = ""
    data: str = "synth:indoor"
    rig: str | None = None
    every: int = 1
    student: str = "pano-small"
    synth_n: int = 192
    synth_hw: tuple[int, int] = (256, 512)
    erp_hw: tuple[int, int] = (128, 256)
    eval_data: str = "auto"
    eval_n: int = 32
    n_patches: int = 0
    fov_deg: float = 0.0
    patch_hw: tuple[int, int] | None = None
    pseudo_hw: tuple[int, int] | None = None
    pseudo_fusion: str = "tangent"
    class_map: str | None = None
    steps: int = 2000
    generations: int = 3
    batch: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 50
    ema_decay: float = 0.995
    seed: int = 0
    amp: str = "auto"
    device: str = "auto"
    ckpt_every: int = 100
    log_every: int = 10
    augment: bool = True
    area_weighted: bool = True
    depth_loss: str = "auto"
    depth_weight: float = 1.0
    pixl: bool = True
    pixl_weight: float = 0.1
    pixl_drift: float = 0.2
    pixl_tau: float = 0.1
    bismap: bool = False
    bismap_components: int = 4
    bismap_quantile: float = 0.05
    bismap_conf: float = 0.8
    rlcc: bool = False
    rlcc_momentum: float = 0.5
    depthg: bool = True
    depthg_weight: float = 1.0
    depthg_points: int = 64
    consistency: bool = False
    cons_weight: float = 0.5
    cons_tilt_deg: float = 20.0
    cons_zoom: float = 1.5
    cons_frac: float = 0.5
    n_clusters: int = 0
    camera_height_m: float = 0.0
    planes: bool = True
    planes_conf: float = 0.7
    planes_tol: float = 0.2
    planes_sigma: float = 0.3
    balance: bool = True
    balance_tau: float = 0.5
    label_temperature: float = 1.0

    def validate(self, path: str | Path | None = None) -> "DistillConfig":
        """Check every field (errors name ``path``, the key and the allowed range); returns a normalised copy."""
        from panoedge.safe_load import check_fields

        def bad(key, problem):
            return ConfigError(path, key, problem)

        check_fields({f: getattr(self, f) for f in FIELDS}, DistillConfig, path, lenient=_SIZE_LENIENT)

        for key, lo, hi in _RANGES:
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
                raise bad(key, f"{v!r}: expected a number in [{lo}, {hi}]")
        for key in _INTS:
            if int(getattr(self, key)) != getattr(self, key):
                raise bad(key, f"{getattr(self, key)!r}: expected an integer")
        for key, choices in (("depth_loss", DEPTH_LOSSES), ("amp", AMP_MODES), ("pseudo_fusion", PSEUDO_FUSIONS)):
            if getattr(self, key) not in choices:
                raise bad(key, f"{getattr(self, key)!r}: choose one of {', '.join(choices)}")
        sizes = {key: None if getattr(self, key) is None else _pair(getattr(self, key), key, path)
                 for key in ("erp_hw", "synth_hw", "pseudo_hw", "patch_hw")}
        for key, hw in sizes.items():
            if hw is None:
                continue
            h, w = hw
            if key == "patch_hw" and (h % 32 or w % 32):
                raise bad(key, f"{h}x{w}: multiples of 32")
            if key != "patch_hw" and (w != 2 * h or h % 32):
                raise bad(key, f"{h}x{w}: an ERP size with W == 2H and H a multiple of 32")
        if self.steps < self.generations:
            raise bad("generations", f"{self.generations} generations for {self.steps} steps: need steps >= generations")
        if not isinstance(self.student, str) or not self.student:
            raise bad("student", "expected a student name (see panoedge models)")
        if not isinstance(self.data, str) or not self.data:
            raise bad("data", "expected a dataset folder or synth:FAMILY")
        return replace(self, **sizes)

    @property
    def steps_per_generation(self) -> int:
        return -(-self.steps // self.generations)

    def to_dict(self) -> dict:
        """JSON-ready dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


_RANGES = (("synth_n", 2, 1_000_000), ("eval_n", 1, 100_000), ("n_patches", 0, 512), ("fov_deg", 0.0, 170.0),
           ("steps", 1, 10_000_000), ("generations", 1, 100), ("batch", 1, 4096), ("lr", 1e-8, 1.0),
           ("weight_decay", 0.0, 1.0), ("warmup", 0, 1_000_000), ("ema_decay", 0.0, 0.99999), ("seed", 0, 2**31 - 1),
           ("ckpt_every", 1, 10_000_000), ("log_every", 1, 10_000_000), ("depth_weight", 0.0, 100.0),
           ("pixl_weight", 0.0, 100.0), ("pixl_drift", 0.01, 0.99), ("pixl_tau", 0.001, 10.0),
           ("bismap_components", 1, 64), ("bismap_quantile", 0.0, 0.5), ("bismap_conf", 0.0, 1.0),
           ("rlcc_momentum", 0.0, 1.0), ("depthg_weight", 0.0, 100.0), ("depthg_points", 4, 4096),
           ("cons_weight", 0.0, 100.0), ("cons_tilt_deg", 0.0, 90.0), ("cons_zoom", 1.0, 4.0),
           ("cons_frac", 0.0, 1.0), ("n_clusters", 0, 1000), ("balance_tau", 0.0, 1.0),
           ("label_temperature", 0.05, 10.0), ("every", 1, 1_000_000), ("camera_height_m", 0.0, 100.0),
           ("planes_conf", 0.0, 1.0), ("planes_tol", 0.0, 10.0), ("planes_sigma", 1e-3, 10.0))
_INTS = ("synth_n", "eval_n", "n_patches", "steps", "generations", "batch", "warmup", "seed", "ckpt_every",
         "log_every", "bismap_components", "depthg_points", "n_clusters", "every")
FIELDS = tuple(f.name for f in fields(DistillConfig))


def _pair(v, key: str, path) -> tuple[int, int]:
    if isinstance(v, str):
        parts = v.lower().split("x")
        v = parts if len(parts) == 2 else [v]
    try:
        h, w = (int(x) for x in v)
    except (TypeError, ValueError):
        raise ConfigError(path, key, f"{v!r}: expected [height, width] or 'HxW'") from None
    if h <= 0 or w <= 0:
        raise ConfigError(path, key, f"{h}x{w}: must be positive")
    return h, w


_SIZE_LENIENT = {"erp_hw": tuple[int, int] | str, "synth_hw": tuple[int, int] | str,
                 "patch_hw": tuple[int, int] | str | None, "pseudo_hw": tuple[int, int] | str | None}
"""Sizes may also be written ``"HxW"`` in a file."""


def read_config_file(path: str | Path) -> dict:
    """The mapping in a YAML or JSON config file, read through :mod:`panoedge.safe_load`: unknown
    keys are a ``ConfigError`` naming the nearest valid one, values must have their field's type
    (booleans ``true``/``false`` only, finite numbers)."""
    from panoedge.safe_load import check_fields, load_file

    path = Path(path)
    if not path.is_file():
        raise ConfigError(path, "(file)", "no such config file")
    data = load_file(path)
    data = {k: v for k, v in data.items() if k != "schema"}
    return check_fields(data, DistillConfig, path, lenient=_SIZE_LENIENT)


def resolve_config(file: str | Path | None = None, **flags) -> DistillConfig:
    """Defaults < ``file`` < ``flags`` (flags that are ``None`` are not given), validated."""
    base = DistillConfig()
    if file is not None:
        from_file = read_config_file(file)
        try:
            base = replace(base, **from_file).validate(file)
        except TypeError as e:
            raise ConfigError(file, "(file)", str(e)) from None
    unknown = sorted(set(flags) - set(FIELDS))
    if unknown:
        raise ConfigError(None, unknown[0], f"unknown option; valid: {', '.join(FIELDS)}")
    given = {k: v for k, v in flags.items() if v is not None}
    return replace(base, **given).validate()


def write_config(path: str | Path, cfg: DistillConfig, **extra) -> Path:
    """Write the resolved config as ``config.json`` (``schema``, every field, then ``extra``)."""
    from panoedge.home import write_json

    return write_json(path, {"schema": SCHEMA, **cfg.to_dict(), **extra})


def load_run_config(path: str | Path) -> DistillConfig:
    """The :class:`DistillConfig` of a run folder's ``config.json`` (extra keys ignored)."""
    p = Path(path)
    p = p / "config.json" if p.is_dir() else p
    from panoedge.safe_load import check_fields, load_json

    data = load_json(p)
    known = check_fields({k: v for k, v in data.items() if k in FIELDS}, DistillConfig, p, lenient=_SIZE_LENIENT)
    return replace(DistillConfig(), **known).validate(p)


def synth_family(data: str) -> str | None:
    """``indoor`` for ``synth:indoor?...``; ``None`` for a dataset folder."""
    if not str(data).startswith("synth:"):
        return None
    return str(data)[len("synth:"):].partition("?")[0] or "indoor"


def lr_at(cfg, step: int) -> float:
    """The learning rate of 0-based ``step`` for a config with ``lr``, ``warmup`` and ``steps``
    (distillation and teacher training share it): linear warm-up over ``warmup`` steps (at most a
    tenth of the run), then cosine decay to 1% of ``lr``; a pure function of ``step``, so a
    resumed run continues the exact schedule."""
    warm = min(cfg.warmup, max(1, cfg.steps // 10))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    t = (step - warm) / max(1, cfg.steps - warm)
    return cfg.lr * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0))))
