"""Best of K candidates (`synth.candidates_per_image` K > 1): draw K candidates per planned image
and keep the one a *selector* scores best.

The selector is a `medlt classify` run trained on the real long-tailed training split only (the data a
user has); a run trained on synthetic images or a phantom oracle is refused. It is loaded once and
scores each batch of candidates in one call. Selecting with it does not make it a judge: on real data
a fidelity measured by a classifier trained on the same images as the selector is biased upwards.

Seeds. Candidate k of a job with noise seed s has seed ``candidate_seed(s, k)``: s itself for k = 0
(so candidate 0 is the image K = 1 writes, and K = 1 is byte for byte the run without selection),
``derive_seed(s, "candidate", k)`` for k >= 1. Candidate k of a batch is generated as one generator
call over the batch's jobs, so every candidate is a pure function of (batch, k): resume and torchrun
shards write the same bytes.

Score (`selection_scores`), a number in [0, 1], higher is better:
  - single-label: the selector's softmax probability of the intended class;
  - multi-label: the geometric mean over all classes of the probability of the intended value under
    independent sigmoids, exp(mean_c [y_c log p_c + (1 - y_c) log(1 - p_c)]): the whole label vector
    counts (absent findings too), and one missed finding lowers the score more than a mean of
    probabilities would.

Rules (`choose_candidates`): `best` keeps the highest-scored candidate; `best-not-near-copy` keeps
the highest-scored candidate that is not a near-copy of a real training image (the test of
--drop-near-copies, medlt.synth.near_copies), and when all K are near-copies the planned image is
dropped and re-drawn like any filter rejection. Ties go to the lower candidate index. Why this
diversity rule: the selector was trained on the real training images, so the candidate it finds most
convincing is, more often than others, one close to a training image; keeping the best candidate
that is not a near-copy stops selection from trading the privacy of the training set for confidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medlt.errors import CheckpointError, RecipeError, UsageError
from medlt.utils.seeding import derive_seed

RULES = ("best", "best-not-near-copy")
#: manifest.csv columns when K > 1 (medlt.synth.manifest)
SELECTION_COLUMNS = ("candidates", "candidate", "candidate_seed", "candidate_rank", "selection_score")
_EPS = 1e-12


def candidate_seed(job_seed: int, k: int) -> int:
    """Noise seed of candidate k of the job whose seed is `job_seed` (candidate 0: the job's own)."""
    return int(job_seed) if int(k) == 0 else derive_seed(int(job_seed), "candidate", int(k))


def selection_scores(proba: np.ndarray, labels: np.ndarray, multi_label: bool) -> np.ndarray:
    """(B,) scores of B candidates from the selector's (B, C) probabilities (softmax single-label,
    sigmoid multi-label) and their intended (B, C) 0/1 label vectors (single-label: one-hot)."""
    p = np.asarray(proba, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    if p.shape != y.shape:
        raise ValueError(f"selector gave probabilities of shape {p.shape} for labels of shape {y.shape}")
    if not multi_label:
        return p[np.arange(p.shape[0]), y.argmax(axis=1)]
    q = np.clip(np.where(y, p, 1.0 - p), _EPS, 1.0)
    return np.exp(np.log(q).mean(axis=1))


def choose_candidates(scores: np.ndarray, rule: str, near_copy: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(picked candidate index, its rank) per row of a (B, K) score table; rank 0 = the highest score,
    ties by lower index. `best-not-near-copy` needs the (B, K) near-copy flags and skips flagged
    candidates; a row whose candidates are all flagged gets index -1 (nothing kept)."""
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, axis=1, kind="stable")  # best first, ties: lower index first
    if rule == "best":
        ok = np.ones(s.shape, dtype=bool)
    elif rule == "best-not-near-copy":
        if near_copy is None:
            raise ValueError("best-not-near-copy needs the candidates' near-copy flags")
        ok = ~np.asarray(near_copy, dtype=bool)
    else:
        raise ValueError(f"unknown selection rule {rule!r}; choose one of {', '.join(RULES)}")
    ok_in_order = np.take_along_axis(ok, order, axis=1)
    first = ok_in_order.argmax(axis=1)  # the first acceptable candidate in score order
    picked = np.where(ok_in_order.any(axis=1), order[np.arange(s.shape[0]), first], -1)
    return picked, np.where(picked >= 0, first, -1)


@dataclass(frozen=True)
class Selection:
    """What a run selects with: K, the rule, the loaded selector and its file's sha256."""
    k: int
    rule: str
    selector: Any = None  # medlt.classify.load.Classifier (or a stand-in with .predict_proba)
    selector_sha256: str | None = None
    selector_path: str | None = None

    @property
    def active(self) -> bool:
        return self.k > 1

    def settings(self) -> dict[str, Any]:
        """plan.json settings["selection"] (part of what fixes the pixels: a resume must match)."""
        return {"candidates_per_image": self.k, "rule": self.rule, "selector_sha256": self.selector_sha256}


def selection_options(recipe, *, candidates: int | None = None, selector: Any = None, rule: str | None = None,
                      near_copies: bool = False) -> tuple[int, str, Any, list[str]]:
    """K, rule, selector (a path, or an already loaded classifier) and warnings, from the command line
    (a bad value: UsageError naming the option) or the recipe's synth section (RecipeError naming the
    key). K > 1 needs a selector; best-not-near-copy needs the near-copy test (--drop-near-copies)."""
    if candidates is not None and int(candidates) < 1:
        raise UsageError(f"--candidates-per-image must be >= 1, got {candidates}")
    if rule is not None and rule not in RULES:
        raise UsageError(f"--selection-rule must be one of {', '.join(RULES)}, got {rule!r}")
    k = int(recipe.synth.candidates_per_image if candidates is None else candidates)
    r = str(recipe.synth.selection_rule if rule is None else rule)
    sel = recipe.synth.selector if selector is None else selector
    sel = Path(sel) if isinstance(sel, str) else sel
    if k == 1:
        return k, r, None, ([f"the selector {sel} is not used: synth.candidates_per_image is 1 (no selection)"]
                            if sel is not None else [])
    if sel is None:
        where, error = (("--candidates-per-image", UsageError) if candidates is not None
                        else ("recipe key 'synth.candidates_per_image'", RecipeError))
        raise error(f"{where} {k} needs a selector: set synth.selector or --selector to a `medlt classify` run "
                    f"trained on the real training split")
    if r == "best-not-near-copy" and not near_copies:
        where, error = (("--selection-rule", UsageError) if rule is not None
                        else ("recipe key 'synth.selection_rule'", RecipeError))
        raise error(f"{where} best-not-near-copy needs --drop-near-copies EXTRACTOR (the near-copy test it skips "
                    f"candidates by)")
    return k, r, sel, []


def load_selector(path: str | Path, label_space, image_size, device: str = "cpu"):
    """The selector classifier at `path` (a `medlt classify` run or checkpoint, loaded with
    weights_only), checked: the recipe's classes and image size, and trained on real images only."""
    from medlt.classify.load import load_classifier
    from medlt.classify.reference import training_kind

    clf = load_classifier(path, device)
    where = f"selector {clf.checkpoint_path}"
    if clf.label_space != label_space:
        raise CheckpointError(f"{where} was trained on classes {list(clf.label_space.names)} (multi_label="
                              f"{clf.label_space.multi_label}); the generator has {list(label_space.names)} "
                              f"(multi_label={label_space.multi_label})")
    kind = training_kind(clf)
    if kind != "real":
        raise CheckpointError(f"{where} was trained on {kind} images; a selector must be trained on the real "
                              f"training split only (train one with `medlt classify RECIPE`)")
    if image_size is not None and list(clf.recipe.data.image_size) != list(image_size):
        raise CheckpointError(f"{where} reads {list(clf.recipe.data.image_size)} images, the generated images are "
                              f"{list(image_size)}")
    return clf


def selector_sha256(path: str | Path) -> str:
    from medlt.classify.load import checkpoint_of
    from medlt.utils.checkpoint import file_sha256

    return file_sha256(checkpoint_of(path))


def selector_proba(selector, images: np.ndarray) -> np.ndarray:
    """The selector's (B, C) probabilities for a batch of candidates (model space, as generated)."""
    import torch

    p = selector.predict_proba(torch.from_numpy(np.ascontiguousarray(images)))
    return p.detach().float().cpu().numpy() if hasattr(p, "detach") else np.asarray(p, dtype=np.float32)


def cost_lines(sel: Selection) -> list[str]:
    """What --dry-run prints about the cost of selection."""
    if not sel.active:
        return ["candidates per kept image: 1 (no selection)"]
    return [f"best of {sel.k} (rule {sel.rule}): {sel.k} candidates generated per kept image; generation takes about "
            f"{sel.k}x the wall time of synth.candidates_per_image=1, plus one selector pass per candidate batch",
            "the selector is trained on the same real images as any real-data judge: a class fidelity of a "
            "selected set measured by such a judge is biased upwards; downstream balanced accuracy is the measure"]
