"""The teacher-training config: defaults in one place, importable without torch (the CLI
derives its help text from it)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from panoedge.errors import UsageError
from panoedge.synth.world import FAMILIES


@dataclass(frozen=True)
class TeacherTrainConfig:
    """Everything a teacher training run depends on; written into ``report.json``.

    ``data`` is ``synth:FAMILY`` or a dataset folder path; ``view_hw`` the training/eval view
    size (multiples of 32); ``fov_deg`` the range of horizontal FOVs drawn per view;
    ``erp_hw`` the held-out ERP size; ``n_eval`` views and panoramas held out.
    """

    family: str = "indoor"
    data: str = "synth:indoor"
    n_views: int = 512
    view_hw: tuple[int, int] = (192, 256)
    fov_deg: tuple[float, float] = (60.0, 110.0)
    pitch_deg: float = 75.0
    width_mult: float = 1.0
    steps: int = 2000
    batch: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup: int = 50
    seed: int = 0
    max_depth_m: float = 80.0
    depth_weight: float = 1.0
    ckpt_every: int = 50
    n_eval: int = 16
    erp_hw: tuple[int, int] = (128, 256)

    def validate(self) -> "TeacherTrainConfig":
        if self.family not in FAMILIES:
            raise UsageError(f"unknown family {self.family!r}; valid: {', '.join(FAMILIES)}")
        if self.data.startswith("synth:") and self.data != f"synth:{self.family}":
            raise UsageError(f"data {self.data!r} with family {self.family!r}: use synth:{self.family} "
                             f"(synthetic families: {', '.join(FAMILIES)})")
        h, w = (int(v) for v in self.view_hw)
        if h <= 0 or w <= 0 or h % 32 or w % 32:
            raise UsageError(f"view size {h}x{w}: height and width must be positive multiples of 32")
        eh, ew = (int(v) for v in self.erp_hw)
        if eh <= 0 or ew != 2 * eh:
            raise UsageError(f"ERP size {eh}x{ew}: need W = 2H")
        lo, hi = self.fov_deg
        if not 10.0 <= lo <= hi < 170.0:
            raise UsageError(f"fov range {lo}-{hi} deg: need 10 <= min <= max < 170")
        for name in ("n_views", "steps", "batch", "ckpt_every", "n_eval"):
            if int(getattr(self, name)) < 1:
                raise UsageError(f"{name} {getattr(self, name)}: must be >= 1")
        if int(self.warmup) < 0:
            raise UsageError(f"warmup {self.warmup}: must be >= 0")
        if not 0.0 <= float(self.pitch_deg) <= 90.0:
            raise UsageError(f"pitch_deg {self.pitch_deg}: must be in [0, 90]")
        if not (self.width_mult > 0 and self.lr > 0 and self.max_depth_m > 0.1):
            raise UsageError("width_mult and lr must be positive, max_depth_m > 0.1")
        if not 0 <= self.seed < 9000:
            raise UsageError(f"seed {self.seed}: must be in [0, 9000) (held-out worlds use a separate range)")
        return replace(self, view_hw=(h, w), erp_hw=(eh, ew), fov_deg=(float(lo), float(hi)))


def teacher_config_from_flags(*, data: str, family: str | None = None, **flags) -> TeacherTrainConfig:
    """Defaults < ``flags`` (``None``: not given) for ``panoedge teacher train``; ``family`` defaults to
    ``FAMILY`` of ``data`` = ``synth:FAMILY`` (a dataset folder needs it given)."""
    from panoedge.distill.config import synth_family

    if family is None:
        family = synth_family(data)
        if family is None:
            raise UsageError(f"--data {data}: a dataset folder needs --family indoor|outdoor (its class set)")
    given = {k: v for k, v in flags.items() if v is not None}
    return replace(TeacherTrainConfig(), data=data, family=family, **given)
