"""BiSMAP's multiple anisotropic prototypes: per-class diagonal GMMs that vet pseudo labels.

Between self-training generations the student's features (decoder output, upsampled to the
label size) of *confident* pixels, whose pseudo-label confidence is at least ``conf`` and whose
pseudo label the student agrees with (BiSMAP's "correctly classified" set), are fitted per class
by a Gaussian mixture of ``n_components`` diagonal-covariance components (EM, k-means++ start,
deterministic for a given ``torch.Generator``). Pixels are sampled in proportion to solid angle.

Each class ``c`` gets a threshold ``delta_c``: the ``quantile`` of its own fitting pixels'
log-likelihoods. Then for every pixel with pseudo label ``y`` and feature ``f``:

* **accept** when ``log p_y(f) >= delta_y``: the soft pseudo label is kept;
* **relabel** when not, but the best class ``c* = argmax_c (log p_c(f) - delta_c)`` has
  ``log p_c*(f) >= delta_c*``: the label becomes one-hot ``c*``;
* **reject** otherwise: the pixel's training weight becomes 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

LOG2PI = math.log(2.0 * math.pi)


@dataclass
class DiagGMM:
    """A Gaussian mixture with diagonal covariances: ``weights (M,)``, ``means (M, C)``, ``vars (M, C)``."""

    weights: torch.Tensor
    means: torch.Tensor
    vars: torch.Tensor

    def component_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, M)``: ``log pi_m + log N(x | mu_m, diag var_m)`` for ``x`` ``(N, C)``."""
        x = x.float()
        inv = 1.0 / self.vars
        quad = (x * x) @ inv.t() - 2.0 * x @ (self.means * inv).t() + (self.means * self.means * inv).sum(1)[None]
        logdet = torch.log(self.vars).sum(1)
        return torch.log(self.weights)[None] - 0.5 * (quad + logdet[None] + x.shape[1] * LOG2PI)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``(N,)`` log density of ``x`` ``(N, C)``."""
        return torch.logsumexp(self.component_log_prob(x), dim=1)


def _kmeanspp(x: torch.Tensor, m: int, gen: torch.Generator) -> torch.Tensor:
    idx = [int(torch.randint(len(x), (1,), generator=gen))]
    d2 = ((x - x[idx[0]]) ** 2).sum(1)
    for _ in range(1, m):
        p = d2 / d2.sum() if float(d2.sum()) > 0 else torch.full_like(d2, 1.0 / len(d2))
        i = int(torch.multinomial(p, 1, generator=gen))
        idx.append(i)
        d2 = torch.minimum(d2, ((x - x[i]) ** 2).sum(1))
    return x[idx].clone()


def fit_gmm(x: torch.Tensor, n_components: int = 4, iters: int = 30, reg: float = 1e-3,
            gen: torch.Generator | None = None) -> DiagGMM:
    """Fit a :class:`DiagGMM` to ``x`` ``(N, C)`` by EM; ``reg`` is added to every variance."""
    x = x.float()
    gen = gen if gen is not None else torch.Generator().manual_seed(0)
    m = max(1, min(n_components, len(x)))
    means = _kmeanspp(x, m, gen)
    var0 = x.var(0, unbiased=False) + reg if len(x) > 1 else torch.full((x.shape[1],), 1.0)
    gmm = DiagGMM(torch.full((m,), 1.0 / m), means, var0.expand(m, -1).clone())
    for _ in range(iters):
        resp = torch.softmax(gmm.component_log_prob(x), dim=1)
        nk = resp.sum(0) + 1e-8
        means = (resp.t() @ x) / nk[:, None]
        var = (resp.t() @ (x * x)) / nk[:, None] - means * means
        gmm = DiagGMM(nk / nk.sum(), means, var.clamp_min(0) + reg)
    return gmm


@dataclass
class ClassGMMs:
    """One :class:`DiagGMM` per class (``None`` where a class had too few confident pixels) and thresholds."""

    gmms: list[DiagGMM | None]
    thresholds: torch.Tensor

    def log_likelihood(self, feats: torch.Tensor) -> torch.Tensor:
        """``(N, K)`` per-class log densities of ``feats`` ``(N, C)`` (``-inf`` for classes without a GMM)."""
        out = torch.full((len(feats), len(self.gmms)), float("-inf"))
        for c, g in enumerate(self.gmms):
            if g is not None:
                out[:, c] = g.log_prob(feats)
        return out


def fit_class_gmms(feats: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, num_classes: int,
                   n_components: int = 4, quantile: float = 0.05, max_per_class: int = 4000,
                   min_per_class: int = 16, gen: torch.Generator | None = None) -> ClassGMMs:
    """Per-class GMMs on ``feats`` ``(N, C)`` with class ids ``labels`` ``(N,)`` (already filtered to
    confident pixels); at most ``max_per_class`` pixels per class, drawn in proportion to ``weights``."""
    gen = gen if gen is not None else torch.Generator().manual_seed(0)
    gmms: list[DiagGMM | None] = []
    thr = torch.full((num_classes,), float("inf"))
    for c in range(num_classes):
        sel = torch.nonzero(labels == c).flatten()
        if len(sel) < min_per_class:
            gmms.append(None)
            continue
        if len(sel) > max_per_class:
            sel = sel[torch.multinomial(weights[sel].float(), max_per_class, replacement=False, generator=gen)]
        x = feats[sel]
        g = fit_gmm(x, n_components, gen=gen)
        gmms.append(g)
        thr[c] = torch.quantile(g.log_prob(x), quantile)
    return ClassGMMs(gmms, thr)


def decide(ll: torch.Tensor, labels: torch.Tensor, thresholds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(action (N,), new_label (N,))`` with action 0 = accept, 1 = relabel, 2 = reject.

    ``ll`` ``(N, K)`` log-likelihoods, ``labels`` ``(N,)`` pseudo labels, ``thresholds`` ``(K,)``.
    Pixels whose label has no GMM are accepted unless another class claims them.
    """
    margin = ll - thresholds[None]
    own = margin.gather(1, labels[:, None])[:, 0]
    own_known = torch.isfinite(thresholds)[labels]
    best_margin, best = margin.max(1)
    accept = own >= 0
    relabel = ~accept & (best_margin >= 0)
    reject = ~accept & ~relabel & own_known
    action = torch.where(relabel, 1, torch.where(reject, 2, 0))
    return action, torch.where(relabel, best, labels)


def refine(probs: torch.Tensor, weight: torch.Tensor, feats: torch.Tensor, model: ClassGMMs,
           chunk: int = 65536) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Apply :func:`decide` to one image: ``probs`` ``(K, H, W)``, ``weight`` ``(H, W)``, ``feats`` ``(C, H, W)``.

    Returns the new ``(probs, weight, action)``: relabelled pixels become one-hot, rejected ones
    get weight 0; ``action`` ``(H, W)`` int8 counts for the log.
    """
    k, h, w = probs.shape
    f = feats.reshape(feats.shape[0], -1).t()
    labels = probs.reshape(k, -1).argmax(0)
    actions, new = [], []
    for s in range(0, len(f), chunk):
        a, n = decide(model.log_likelihood(f[s:s + chunk]), labels[s:s + chunk], model.thresholds)
        actions.append(a)
        new.append(n)
    action, new_label = torch.cat(actions), torch.cat(new)
    flat = probs.reshape(k, -1).clone()
    rel = action == 1
    if bool(rel.any()):
        flat[:, rel] = torch.nn.functional.one_hot(new_label[rel], k).t().to(flat.dtype)
    wt = weight.reshape(-1).clone()
    wt[action == 2] = 0
    return flat.reshape(k, h, w), wt.reshape(h, w), action.reshape(h, w).to(torch.int8)
