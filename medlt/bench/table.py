"""The bench table: every number read from the cells' report.json, aggregated per method.

Per cell (DIR/<cell>/eval/report.json), `cell_metrics` reads (single-label names; multi-label
uses the mean per-class (TPR+TNR)/2 balanced accuracy and the class-fidelity AUROC):

  bacc_all / bacc_{head,medium,tail}   classification.test: balanced_accuracy, group_mean_recall
                                       (the `test` role = the recipe's data.splits.test)
  fidelity_all / fidelity_{group}      generation.class_fidelity: mean_class_fidelity,
                                       group_mean_fidelity (judge: the bench's reference classifier)
  cas                                  generation.cas.balanced_accuracy
  fid_overall, kid_overall             generation.by_extractor[<the bench extractor>].fid_kid.scopes
  fid_tail, kid_tail                   .overall / ["group:tail"]: fid, kid_mean (class-matched)
  ms_ssim_tail                         mean of generation.diversity.per_class_ms_ssim over the tail
                                       classes that have a value (the only derived number)
  memorization_rate, _tail             generation.by_extractor[...].memorization: overall /
                                       per_group.tail flagged_rate
  generator_steps, wall_s              from the cells' cell.json

Aggregation per method over its cells v[g][k] (generator seed g, classifier seed k): `mean` over
all cells that have the value; `sd_generator_seeds` = sample SD over g of the per-g means over k;
`sd_classifier_seeds` = mean over g of the sample SD over k (None with one seed). Δ bAcc vs the
real-only and the copies controls: pairs (control c<k>, method g<s>/c<k>) on the same test images,
the point value of the mean paired difference with two percentile intervals (medlt.bench.paired_mean):
"95% CI, test images" (test-set noise given the trained models) and "95% CI, seeds + test images"
(a hierarchical bootstrap that also draws the seed pairs), each seed pair's Δ (`per_seed_pair`), and
the SDs of the per-cell differences as above.

The judge's ceiling per class (`judge`): single-label its recall on the real test images (classes
below evaluate.judge_min_real_recall are kept out of the fidelity means); multi-label, whose fidelity
is a threshold-free AUROC, its AUROC on the real test images (classes at or below chance, 0.5, are
kept out). The classes kept out are the ones the cells' evaluate kept out.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from medlt.bench.cells import BenchPlan, Judge
from medlt.data.labels import GROUPS, LabelSpace
from medlt.errors import DataError
from medlt.report.document import to_html, to_markdown
from medlt.utils.atomic import atomic_write_text

ROLE = "test"
METRICS = (
    ("fidelity_all", "class fidelity (all)"), ("fidelity_head", "fidelity head"),
    ("fidelity_medium", "fidelity medium"), ("fidelity_tail", "fidelity tail"), ("cas", "CAS bAcc"),
    ("fid_overall", "FID overall"), ("kid_overall", "KID overall"), ("fid_tail", "FID tail"),
    ("kid_tail", "KID tail"), ("ms_ssim_tail", "MS-SSIM tail"), ("memorization_rate", "memorization rate"),
    ("memorization_rate_tail", "memorization tail"),
    ("bacc_all", "bAcc"), ("bacc_head", "bAcc head"), ("bacc_medium", "bAcc medium"), ("bacc_tail", "bAcc tail"),
)


def _get(d, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _num(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def load_cell_report(eval_dir: Path) -> dict:
    p = Path(eval_dir) / "report.json"
    if not p.is_file():
        raise DataError(f"{p}: missing (the cell is marked done; delete its cell.json to redo it)")
    return json.loads(p.read_text())


def cell_metrics(report: dict, extractor_name: str | None) -> dict:
    """The table's numbers of one evaluation (see the module docstring for the keys)."""
    multi = bool(report["label_space"]["multi_label"])
    cls = report["classification"].get(ROLE, {})
    head = "mean_per_class_balanced_accuracy_tpr_tnr" if multi else "balanced_accuracy"
    gkey = "group_mean_balanced_accuracy_tpr_tnr" if multi else "group_mean_recall"
    m = {"bacc_all": _num(cls.get(head))}
    m.update({f"bacc_{g}": _num(_get(cls, gkey, g)) for g in GROUPS})
    gen = report.get("generation") or {}
    fid = gen.get("class_fidelity") or {}
    fk, fg = ("mean_auroc", "group_mean_auroc") if multi else ("mean_class_fidelity", "group_mean_fidelity")
    m["fidelity_all"] = _num(fid.get(fk))
    m.update({f"fidelity_{g}": _num(_get(fid, fg, g)) for g in GROUPS})
    m["cas"] = _num(_get(gen, "cas", head))
    ext = (gen.get("by_extractor") or {}).get(extractor_name) if extractor_name else None
    if ext is None and gen.get("by_extractor"):
        ext = gen["by_extractor"].get(gen.get("feature_extractor"))
    scopes = _get(ext, "fid_kid", "scopes") or {}
    m["fid_overall"] = _num(_get(scopes, "overall", "fid"))
    m["kid_overall"] = _num(_get(scopes, "overall", "kid_mean"))
    m["fid_tail"] = _num(_get(scopes, "group:tail", "fid"))
    m["kid_tail"] = _num(_get(scopes, "group:tail", "kid_mean"))
    names = report["label_space"]["names"]
    per = _get(gen, "diversity", "per_class_ms_ssim") or {}
    tail = [per.get(n) for n, g in zip(names, report["groups"], strict=True) if g == "tail"]
    tail = [float(v) for v in tail if v is not None]
    m["ms_ssim_tail"] = float(np.mean(tail)) if tail else None
    mem = _get(ext, "memorization") or {}
    m["memorization_rate"] = _num(_get(mem, "overall", "flagged_rate"))
    m["memorization_rate_tail"] = _num(_get(mem, "per_group", "tail", "flagged_rate"))
    pc = fid.get("per_class") or {}
    key = "auroc" if multi else "fidelity"
    m["per_class_fidelity"] = {n: _num((pc.get(n) or {}).get(key)) for n in names} if pc else None
    for jk in ("judge_real_recall", "judge_real_auroc"):  # the judge's ceiling per class (see the docstring)
        if pc and any(jk in (pc.get(n) or {}) for n in names):
            m[jk] = {n: _num((pc.get(n) or {}).get(jk)) for n in names}
    if "classes_judge_cannot_recognise" in fid:
        m["judge_cannot_recognise"] = list(fid["classes_judge_cannot_recognise"])
    if "judge_min_real_recall" in fid:
        m["judge_min_real_recall"] = float(fid["judge_min_real_recall"])
    # how many classes entered each scoped number: [entered, classes of the scope]
    entered: dict[str, list[int]] = {}
    cim = fid.get("classes_in_means") or {}
    for g in ("all", *GROUPS):
        if g in cim:
            entered[f"fidelity_{g}"] = [int(v) for v in cim[g]]
    for sk, mk in (("overall", "overall"), ("group:tail", "tail")):
        sc = scopes.get(sk)
        if sc is not None:
            e = [len(sc.get("classes") or []), len(sc.get("classes") or []) + len(sc.get("excluded") or {})]
            entered[f"fid_{mk}"] = entered[f"kid_{mk}"] = e
    m["classes_entered"] = entered
    return m


def _sd(vals) -> float | None:
    v = [x for x in vals if x is not None]
    return float(np.std(v, ddof=1)) if len(v) >= 2 else None


def aggregate(grid: dict[int, dict[int, float | None]]) -> dict:
    """grid[g][k] -> mean, SD over generator seeds (of the per-g means), mean SD over classifier seeds."""
    allv = [v for row in grid.values() for v in row.values() if v is not None]
    per_g = [float(np.mean([v for v in row.values() if v is not None])) for row in grid.values()
             if any(v is not None for v in row.values())]
    sds_k = [_sd(row.values()) for row in grid.values()]
    sds_k = [s for s in sds_k if s is not None]
    return {"mean": float(np.mean(allv)) if allv else None, "n": len(allv),
            "sd_generator_seeds": _sd(per_g) if len(grid) > 1 else None,
            "sd_classifier_seeds": float(np.mean(sds_k)) if sds_k else None}


def min_real_recall(report: dict) -> float:
    """evaluate.judge_min_real_recall as the cells' evaluate used it (0 is a value: keep every class)."""
    v = _get(report, "generation", "class_fidelity", "judge_min_real_recall")
    if v is None:
        v = _get(report, "recipe", "evaluate", "judge_min_real_recall")
    return 0.5 if v is None else float(v)


def judge_summary(judge_metrics: dict | None, label_space: LabelSpace, first_report: dict) -> dict:
    """bench.json's judge ceiling: per class the judge's recall (single-label) or AUROC (multi-label)
    on the real test images, and the classes its cells' evaluate kept out of the fidelity means."""
    jm = judge_metrics or {}
    auroc, recall = jm.get("judge_real_auroc"), jm.get("judge_real_recall")
    out: dict = {"real_recall_per_class": recall, "real_auroc_per_class": auroc,
                 "ceiling": "AUROC" if auroc else "recall" if recall else None,
                 "min_real_recall": None if auroc else (jm["judge_min_real_recall"] if "judge_min_real_recall" in jm
                                                         else min_real_recall(first_report)),
                 "real_auroc_above": 0.5 if auroc else None}
    values = auroc or recall
    if not values:
        out["classes_it_cannot_recognise"] = None
    elif "judge_cannot_recognise" in jm:
        out["classes_it_cannot_recognise"] = list(jm["judge_cannot_recognise"])
    else:  # a report from before evaluate recorded the list: the same rule as evaluate's
        out["classes_it_cannot_recognise"] = [
            n for n in label_space.names if values.get(n) is None
            or (values[n] <= 0.5 if auroc else values[n] < out["min_real_recall"])]
    return out


def _row_cells(plan: BenchPlan, method: str) -> dict[int, dict[int, Path]]:
    """grid[g][k] -> the cell folder (controls: one pseudo generator seed -1)."""
    if method in plan.controls:
        return {-1: {k: plan.control(method, k).dir for k in plan.classifier_seeds}}
    return {g: {k: plan.classifier(method, g, k).dir for k in plan.classifier_seeds} for g in plan.seeds}


def build_table(plan: BenchPlan, judge: Judge, settings: dict, *, n_resamples: int = 1000, seed: int = 0) -> dict:
    """bench.json's content from the finished cells of `plan`."""
    from medlt.bench.paired_mean import mean_paired_difference, share_of_headroom
    from medlt.report.paired import aligned_predictions

    unfinished = [str(c.dir) for c in plan.cells if not c.done]
    if unfinished:
        raise DataError(f"{len(unfinished)} cell(s) unfinished, e.g. {unfinished[0]}; re-run the bench to finish")
    first = load_cell_report(plan.real(plan.classifier_seeds[0]).dir / "eval")
    ls = LabelSpace(tuple(first["label_space"]["names"]), bool(first["label_space"]["multi_label"]))
    groups = first["groups"]
    threshold = float(_get(first, "recipe", "classifier", "threshold") or 0.5)
    ext_name = None
    cells_out, reports = [], {}
    for c in plan.cells:
        rec = c.record()
        entry = {k: rec.get(k) for k in ("cell", "kind", "method", "generator_seed", "classifier_seed", "wall_s",
                                         "generator_steps", "synthetic_images", "probe_images", "copies", "ideal_images",
                                         "judged_images")}
        if c.kind in ("real", "copies", "ideal", "classifier"):
            rep = load_cell_report(c.dir / "eval")
            reports[c.dir] = rep
            if ext_name is None and rep.get("generation"):
                ext_name = rep["generation"].get("feature_extractor")
            entry["report"] = str((c.dir / "eval" / "report.json").relative_to(plan.out))
        cells_out.append(entry)
    for entry, c in zip(cells_out, plan.cells, strict=True):
        if c.dir in reports:
            entry["metrics"] = cell_metrics(reports[c.dir], ext_name)
    by_dir = {c.dir: e for c, e in zip(plan.cells, cells_out, strict=True)}
    judge_metrics: dict = {}

    pred_cache: dict = {}

    def preds(a_dir: Path, b_dir: Path):
        if (a_dir, b_dir) not in pred_cache:
            pred_cache[(a_dir, b_dir)] = aligned_predictions(a_dir / "eval", b_dir / "eval", ROLE, ls)
        return pred_cache[(a_dir, b_dir)]

    def pairs_against(ref_dir_of_k, grid_dirs):
        """(pairs, grid of per-cell differences) of the cells in grid_dirs against ref_dir_of_k(k)."""
        pairs, grid = [], {}
        for g, r in grid_dirs.items():
            grid[g] = {}
            for k, d in r.items():
                a_dir = ref_dir_of_k(k, g)
                pairs.append(preds(a_dir, d))
                ma, mb = by_dir[a_dir]["metrics"], by_dir[d]["metrics"]
                grid[g][k] = {key: (None if mb[f"bacc_{key}"] is None or ma[f"bacc_{key}"] is None
                                    else mb[f"bacc_{key}"] - ma[f"bacc_{key}"]) for key in ("all", *GROUPS)}
        return pairs, grid

    def delta_block(pairs, grid) -> dict:
        diff = mean_paired_difference(pairs, ls, groups, threshold=threshold, n_resamples=n_resamples, seed=seed)
        out = {"n_pairs": diff["n_pairs"], "bootstrap": {k: diff[k] for k in (
            "n_resamples", "seed", "level", "resampling", "resampling_seeds_and_test_images")}}
        for key, dk in (("all", "headline"), *((g, g) for g in GROUPS)):
            agg = aggregate({g: {k: v[key] for k, v in r.items()} for g, r in grid.items()})
            out[key] = {"mean_paired_difference": diff[dk], **agg}
        # each seed pair's Δ (the order of the pairs: generator seed, then classifier seed)
        out["per_seed_pair"] = [{"generator_seed": None if g == -1 else g, "classifier_seed": k,
                                 **{key: v[key] for key in ("all", *GROUPS)}}
                                for g, r in grid.items() for k, v in r.items()]
        return out

    ideal_pairs = ([preds(plan.copies(k).dir, plan.ideal_cell(k).dir) for k in plan.classifier_seeds]
                   if plan.ideal else [])
    rows = []
    for method in [*plan.controls, *plan.methods]:
        grid_dirs = _row_cells(plan, method)
        row: dict = {"method": method, "cells": [str(d.relative_to(plan.out)) for r in grid_dirs.values()
                                                  for d in r.values()], "metrics": {}}
        for key, _ in METRICS:
            grid = {g: {k: by_dir[d]["metrics"].get(key) for k, d in r.items()} for g, r in grid_dirs.items()}
            row["metrics"][key] = aggregate(grid)
        counts_seen: dict[str, list] = {}
        for r in grid_dirs.values():
            for d in r.values():
                for key, e in (by_dir[d]["metrics"].get("classes_entered") or {}).items():
                    if e not in counts_seen.setdefault(key, []):
                        counts_seen[key].append(e)
        row["classes_entered"] = counts_seen
        first_dirs = ([plan.ideal_cell(plan.classifier_seeds[0]).dir] if method == "ideal" else
                      [plan.classifier(method, g, plan.classifier_seeds[0]).dir for g in plan.seeds]
                      if method not in plan.controls else [])
        if method not in plan.controls:
            gens = [by_dir[plan.generator(method, g).dir] for g in plan.seeds]
            row["generator_steps"] = sorted({e["generator_steps"] for e in gens})
            row["generator_wall_s"] = aggregate({g: {0: e["wall_s"]} for g, e in zip(plan.seeds, gens, strict=True)})
        if first_dirs:
            pcs = [by_dir[d]["metrics"]["per_class_fidelity"] for d in first_dirs]
            pcs = [p for p in pcs if p]
            row["per_class_fidelity_mean_over_generator_seeds"] = (
                {n: (float(np.mean(v)) if (v := [p[n] for p in pcs if p[n] is not None]) else None) for n in ls.names}
                if pcs else None)
            for d in first_dirs:
                jm = by_dir[d]["metrics"]
                if not judge_metrics and (jm.get("judge_real_recall") or jm.get("judge_real_auroc")):
                    judge_metrics.update(jm)
        row["classifier_wall_s"] = aggregate({g: {k: by_dir[d]["wall_s"] for k, d in r.items()}
                                              for g, r in grid_dirs.items()})
        refs = [c for c in ("real", "copies") if c != method and not (method == "real" and c == "copies")]
        if method not in ("real", "copies", "ideal") and "plain" in plan.methods and method != "plain":
            refs.append("plain")
        for ref in refs:
            if ref == "plain":  # a method against plain synthesis: same generator seed, same classifier seed
                pairs, grid = pairs_against(lambda k, g: plan.classifier("plain", g, k).dir, grid_dirs)
            else:
                pairs, grid = pairs_against(lambda k, g, ref=ref: plan.control(ref, k).dir, grid_dirs)
            row[f"delta_bacc_vs_{ref}"] = delta_block(pairs, grid)
        if ideal_pairs and method not in ("real", "copies", "ideal"):
            mpairs, _ = pairs_against(lambda k, g: plan.copies(k).dir, grid_dirs)
            row["share_of_headroom"] = share_of_headroom(mpairs, ideal_pairs, ls, groups, threshold=threshold,
                                                         n_resamples=n_resamples, seed=seed)
        rows.append(row)
    headroom = None
    if ideal_pairs:  # the ideal row's Δ vs copies (same pairs, same resamples as every share's denominator)
        d = next(r for r in rows if r["method"] == "ideal")["delta_bacc_vs_copies"]
        headroom = {k: d[dk]["mean_paired_difference"] for k, dk in (("headline", "all"), *((g, g) for g in GROUPS))}
        e = headroom["headline"]
        headroom["can_tell_synthesis_from_copying"] = bool(e and e["interval"] and e["interval"][0] > 0)
        iv_s = e and e.get("interval_seeds_and_test_images")
        headroom["can_tell_synthesis_from_copying_with_seed_noise"] = bool(iv_s and iv_s[0] > 0) if iv_s else None
    counts = first["train_class_counts"]
    order = sorted(range(len(ls.names)), key=lambda i: (-counts[i], i))
    return {
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "definition": ("method x metrics over generator seeds x classifier seeds; every per-cell number is read "
                       "from that cell's eval/report.json (role 'test' = the recipe's data.splits.test, named in "
                       "settings.test_split_label). mean = over "
                       "all cells; sd_generator_seeds = SD over generator seeds of the per-seed means; "
                       "sd_classifier_seeds = mean over generator seeds of the SD over classifier seeds. "
                       "delta_bacc_vs_*: mean paired difference (method - control, same classifier seed, same "
                       "test images; vs plain: same generator seed too) with two percentile bootstrap intervals: "
                       "'interval' over test images only, 'interval_seeds_and_test_images' a hierarchical "
                       "bootstrap drawing the seed pairs with replacement and then the test images (None with "
                       "one seed pair); per_seed_pair: each pair's difference. headroom = bAcc(ideal) - "
                       "bAcc(copies) (phantoms: ideal = new phantom "
                       "images for the same plan); share_of_headroom = (method - copies) / headroom, numerator "
                       "and denominator bootstrapped on the same resamples, shown only where the headroom's "
                       "test-image interval lies above 0; no resample is dropped, so a resample with zero "
                       "headroom makes an end infinite (null in JSON, 'unbounded' flags it). classes_entered: "
                       "[classes that entered, classes of the scope] "
                       "per scoped number (FID/KID: enough real and synthetic images; fidelity: classes the "
                       "judge recognises on real test images: single-label its recall there is at least "
                       "evaluate.judge_min_real_recall, multi-label its AUROC there is above 0.5)."),
        "settings": settings,
        "judge": {"kind": judge.kind, "source": judge.source, "reference_classifier": str(judge.reference),
                  "feature_extractor": str(judge.extractor), "feature_extractor_name": ext_name,
                  "features_trained_on_compared_images": judge.trained_on_compared_images,
                  **judge_summary(judge_metrics, ls, first)},
        "controls": plan.controls,
        "headroom": headroom,
        "label_space": {"names": list(ls.names), "multi_label": ls.multi_label},
        "train_class_counts": counts, "groups": groups,
        "classes_by_training_count": [ls.names[i] for i in order],
        "rows": rows, "cells": cells_out,
    }


# ---------------------------------------------------------------------------------------------
# rendering


def _ms(a: dict | None, digits: int = 3) -> str:
    """'mean ± sd_g / ± sd_k' (gen seeds / classifier seeds)."""
    if not a or a.get("mean") is None:
        return "–"
    s = f"{a['mean']:.{digits}f}"
    sg, sk = a.get("sd_generator_seeds"), a.get("sd_classifier_seeds")
    if sg is not None or sk is not None:
        s += f" ±{'–' if sg is None else f'{sg:.{digits}f}'}ᵍ ±{'–' if sk is None else f'{sk:.{digits}f}'}ᶜ"
    return s


def _iv(iv, significant: bool | None = None, digits: int = 3, unbounded=None) -> str:
    """'[lo, hi]' (an infinite or null end flagged in `unbounded` reads −∞ / +∞), ' n.s.' when not
    significant; '–' without an interval."""
    if not iv:
        return "–"
    ub = unbounded or [False, False]
    lo = "−∞" if ub[0] or iv[0] is None or iv[0] == -math.inf else f"{iv[0]:+.{digits}f}"
    hi = "+∞" if ub[1] or iv[1] is None or iv[1] == math.inf else f"{iv[1]:+.{digits}f}"
    return f"[{lo}, {hi}]" + (" n.s." if significant is False else "")


def _delta(d: dict | None) -> str:
    """'Δ [95% CI, test images] · [95% CI, seeds + test images]'."""
    if not d or not d.get("mean_paired_difference"):
        return "–"
    e = d["mean_paired_difference"]
    s = f"{e['difference']:+.3f}"
    if e.get("interval"):
        s += " " + _iv(e["interval"], e["significant"])
    return s + " · " + _iv(e.get("interval_seeds_and_test_images"), e.get("significant_seeds_and_test_images"))


def _counts(row: dict, key: str) -> str:
    """' (e/n)' for a scoped number: how many of the scope's classes entered it (e.g. FID tail (2/10))."""
    seen = (row.get("classes_entered") or {}).get(key)
    if not seen:
        return ""
    es, ns = sorted({e for e, _ in seen}), sorted({n for _, n in seen})
    e = str(es[0]) if len(es) == 1 else f"{es[0]}–{es[-1]}"
    return f" ({e}/{ns[0] if len(ns) == 1 else '/'.join(map(str, ns))})"


def _share(d: dict | None) -> str:
    """'share [95% CI, test images] · [95% CI, seeds + test images]', 'unbounded' after an interval
    with an infinite end (resamples with zero headroom)."""
    if not d:
        return "–"
    if not d.get("shown"):
        return "no headroom"
    sh = d["share"]
    parts = []
    for ik, uk in (("interval", "unbounded"), ("interval_seeds_and_test_images", "unbounded_seeds_and_test_images")):
        iv, ub = sh.get(ik), sh.get(uk)
        if not iv:
            parts.append("–")
            continue
        ub = ub or [iv[0] is None or iv[0] == -math.inf, iv[1] is None or iv[1] == math.inf]
        parts.append(_iv(iv, None, 2, ub) + (" unbounded" if any(ub) else ""))
    return f"{sh['value']:+.2f} " + " · ".join(parts)


def _headroom_text(t: dict) -> str | None:
    h = t.get("headroom")
    if not h or not h.get("headline"):
        return None
    e = h["headline"]
    tail = h.get("tail")

    def both(x):
        return (f"{x['difference']:+.3f} {_iv(x['interval'])} (95% CI, test images), "
                f"{_iv(x.get('interval_seeds_and_test_images'))} (95% CI, seeds + test images)")
    tail_s = f"; tail {both(tail)}" if tail else ""
    s = (f"Headroom (bAcc of the ideal arm − bAcc of copies, mean paired difference over classifier seeds): "
         f"{both(e)}{tail_s}. ")
    if h.get("can_tell_synthesis_from_copying") and h.get("can_tell_synthesis_from_copying_with_seed_noise") is False:
        s += ("With seed noise included the headroom's interval reaches 0, so what follows holds for these "
              "trained models, not across seeds. ")
    if h.get("can_tell_synthesis_from_copying"):
        s += ("Its interval lies above 0, so this bench can tell a better generator from copying; each method's "
              "share of the headroom closed = (method − copies) / headroom, with a bootstrap interval from the same "
              "resamples (1 = as good as perfect samples, 0 = as good as copies, < 0 = worse than copies).")
    else:
        s += ("Its interval does not lie above 0: this bench cannot tell synthesis from copying (even perfect "
              "samples do not beat copies here), so no share of headroom is shown and no method's Δ vs copies says "
              "anything about synthesis.")
    return s


def table_blocks(t: dict, figures: bool = True) -> list[tuple]:
    s = t["settings"]
    rows = t["rows"]
    j = t["judge"]
    b: list[tuple] = [("h", 1, "medlt bench")]
    b.append(("p", f"Recipe `{s.get('recipe_file')}`, preset {s.get('preset') or 'none'}; methods "
                   f"{', '.join(s['methods'])}; generator seeds {s['seeds']}, classifier seeds "
                   f"{s['classifier_seeds']}. Judge (class fidelity): {j['kind']} `{j['reference_classifier']}`; "
                   f"FID/KID/memorization features: {j['feature_extractor_name'] or j['feature_extractor']}. "
                   f"Cells: {len(t['cells'])}."))
    if s.get("resolved_sets"):
        b.append(("p", "Recipe keys set by the preset and --set, as resolved: "
                       + ", ".join(f"`{x}`" for x in s["resolved_sets"]) + "."))
    b.append(("p", "Each value: mean ±SD over generator seeds (ᵍ) ±mean SD over classifier seeds (ᶜ); – = not "
                   f"applicable or fewer than two seeds. bAcc on the {s.get('test_split_label') or 'test split'}. "
                   "Δ bAcc: mean paired "
                   "difference to the control of the same classifier seed, then two 95% bootstrap intervals "
                   "(n.s. = contains 0): first \"95% CI, test images\" (the test images resampled; the trained "
                   "models held fixed), then after · \"95% CI, seeds + test images\" (per resample the seed pairs "
                   "are drawn with replacement, then the test images: it adds the noise of generator and "
                   "classifier seeds; – with one seed pair). Each seed pair's Δ is listed below the table. (e/n) "
                   "after a scoped number: e of the scope's n classes entered it (FID/KID: classes with "
                   "evaluate.min_real_per_class real and min_synthetic_per_class synthetic images; fidelity: "
                   "classes the judge recognises)."))
    gen_keys = [k for k, _ in METRICS if not k.startswith("bacc")]
    probe = s.get("probe_per_class") or 0
    gen_rows = [r for r in rows if r["method"] not in ("real", "copies")]
    b.append(("h", 2, f"Generation (judged on each generator's {f'probe set, {probe} images per class' if probe else 'synthetic set'}"
                      + ("; ideal = new phantom images, the judge's ceiling" if any(r["method"] == "ideal"
                                                                                     for r in rows) else "") + ")"))
    b.append(("table", ["method", *[lbl for k, lbl in METRICS if k in gen_keys], "generator steps",
                        "generator wall s"],
              [[r["method"], *[_ms(r["metrics"][k]) + _counts(r, k) for k in gen_keys],
                ",".join(str(x) for x in r.get("generator_steps", [])) or "–",
                _ms(r.get("generator_wall_s"), 0)] for r in gen_rows]))
    jr = j.get("real_recall_per_class") or j.get("real_auroc_per_class")
    multi_ceiling = bool(j.get("real_auroc_per_class"))
    if jr:
        bad = j.get("classes_it_cannot_recognise") or []
        if multi_ceiling:
            b.append(("p", "Multi-label class fidelity is an AUROC (threshold-free), so its ceiling is the judge's "
                           "AUROC of each class on the real test images (judge real AUROC). Classes it ranks at or "
                           "below chance (≤ 0.5) ("
                           + (", ".join(bad) if bad else "none") + ") are marked \"judge cannot recognise this "
                           "class\" and kept out of the fidelity means."))
        else:
            mr = j.get("min_real_recall")
            b.append(("p", f"The judge's recall on the real test images of each class bounds that class's fidelity. "
                           f"Classes it recalls below {0.5 if mr is None else mr:g} ("
                           + (", ".join(bad) if bad else "none") + ") are marked \"judge cannot recognise this "
                           "class\" and kept out of the fidelity means."))
        names = t["classes_by_training_count"]
        fid_rows = [r for r in gen_rows if r.get("per_class_fidelity_mean_over_generator_seeds")]
        body = []
        for n in names:
            g = t["groups"][t["label_space"]["names"].index(n)]
            rec = jr.get(n)
            cells = [f"{v:.2f}" if (v := r["per_class_fidelity_mean_over_generator_seeds"].get(n)) is not None
                     else "–" for r in fid_rows]
            body.append([n, g, "–" if rec is None else f"{rec:.2f}"
                         + ("" if n not in bad else " (judge cannot recognise this class)"), *cells])
        b.append(("table", ["class", "group", "judge real AUROC (real test images)" if multi_ceiling
                            else "judge recall on real test images",
                            *[f"fidelity {r['method']}" for r in fid_rows]], body))
    if j.get("features_trained_on_compared_images"):
        b.append(("p", "Caveat: the memorization and FID/KID features come from a classifier trained on the real "
                       "training images they compare against; such features can map a near-copy and its source "
                       "close together or far apart for reasons of their own, so a memorization rate of 0 here is "
                       "weak evidence. On phantoms the oracle (trained on other images) avoids this."))
    b.append(("h", 2, "Downstream classifier (real + synthetic; controls: real only, real + copies"
                      + (", real + ideal" if "ideal" in t.get("controls", []) else "") + ")"))
    hr = _headroom_text(t)
    if hr:
        b.append(("p", hr))
    has_plain = any(r.get("delta_bacc_vs_plain") for r in rows)
    has_share = any(r.get("share_of_headroom") for r in rows)
    ci = " [95% CI, test images] · [95% CI, seeds + test images]"
    hdr = ["method", "bAcc", "bAcc head", "bAcc medium", "bAcc tail", f"Δ bAcc vs real{ci}",
           "Δ tail vs real", f"Δ bAcc vs copies{ci}", "Δ tail vs copies",
           *([f"Δ bAcc vs plain{ci}"] if has_plain else []),
           *([f"share of headroom closed{ci}", "share tail"] if has_share else []), "classifier wall s"]
    body = []
    for r in rows:
        dr, dc, dp = r.get("delta_bacc_vs_real"), r.get("delta_bacc_vs_copies"), r.get("delta_bacc_vs_plain")
        sh = r.get("share_of_headroom")
        body.append([r["method"], *[_ms(r["metrics"][f"bacc_{g}"]) for g in ("all", *GROUPS)],
                     _delta(dr and dr["all"]), _delta(dr and dr["tail"]), _delta(dc and dc["all"]),
                     _delta(dc and dc["tail"]), *([_delta(dp and dp["all"])] if has_plain else []),
                     *([_share(sh and sh["headline"]), _share(sh and sh["tail"])] if has_share else []),
                     _ms(r["classifier_wall_s"], 0)])
    b.append(("table", hdr, body))
    b.extend(per_seed_pair_blocks(rows))
    if figures:
        png = fidelity_png(t)
        if png:
            what = "AUROC" if (t.get("judge") or {}).get("real_auroc_per_class") else "recall"
            b.append(("img", "per_class_fidelity.png", png, "Class fidelity per class (mean over generator seeds), "
                      f"classes ordered by training count (head left); dashed: the judge's {what} on real test "
                      "images of the class, the ceiling of its fidelity."))
        png = delta_png(t)
        if png:
            b.append(("img", "delta_bacc.png", png, "Δ bAcc (all, tail) vs the real-only and copies controls, "
                      "mean paired difference with its 95% intervals: test images (thick), seeds + test images "
                      "(thin)."))
    return b


def _pair_label(p: dict) -> str:
    return (f"g{p['generator_seed']} " if p.get("generator_seed") is not None else "") + f"c{p['classifier_seed']}"


def per_seed_pair_blocks(rows: list[dict]) -> list[tuple]:
    """A table of each seed pair's Δ bAcc (all / tail) per method and control."""
    body, width = [], 0
    for r in rows:
        for ctrl in ("real", "copies", "plain"):
            d = r.get(f"delta_bacc_vs_{ctrl}")
            pairs = (d or {}).get("per_seed_pair")
            if not pairs:
                continue
            cells = [f"{_pair_label(p)}: " + " / ".join("–" if p[k] is None else f"{p[k]:+.3f}" for k in ("all", "tail"))
                     for p in pairs]
            width = max(width, len(cells))
            body.append([r["method"], ctrl, *cells])
    if not body:
        return []
    body = [row + [""] * (2 + width - len(row)) for row in body]
    return [("p", "Δ bAcc per seed pair (g = generator seed, c = classifier seed; all / tail): the values the "
                  "\"seeds + test images\" interval draws from."),
            ("table", ["method", "vs", *[f"pair {i + 1}" for i in range(width)]], body)]


def fidelity_png(t: dict) -> bytes | None:
    from medlt.report.figures import _plt, _png

    names = t["classes_by_training_count"]
    series = {r["method"]: r["per_class_fidelity_mean_over_generator_seeds"] for r in t["rows"]
              if r.get("per_class_fidelity_mean_over_generator_seeds")}
    if not series:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(min(max(6.0, 0.45 * len(names) + 2), 18.0), 3.8))
    for m, pc in series.items():
        ax.plot(range(len(names)), [np.nan if pc[n] is None else pc[n] for n in names], marker="o", label=m)
    j = t.get("judge") or {}
    jr = j.get("real_auroc_per_class") or j.get("real_recall_per_class")
    if jr:
        what = "real AUROC" if j.get("real_auroc_per_class") else "recall on real"
        ax.plot(range(len(names)), [np.nan if jr.get(n) is None else jr[n] for n in names], ls="--", color="k",
                lw=1, label=f"judge {what} (ceiling)")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("class fidelity")
    ax.set_title("Class fidelity per class (classes by training count)")
    ax.legend(fontsize=8)
    return _png(fig)


def delta_png(t: dict) -> bytes | None:
    from medlt.report.figures import _plt, _png

    items = []
    for r in t["rows"]:
        for ctrl in ("real", "copies", "plain"):
            d = r.get(f"delta_bacc_vs_{ctrl}")
            for key in ("all", "tail"):
                e = d and d[key]["mean_paired_difference"]
                if e:
                    items.append((f"{r['method']} vs {ctrl} ({key})", e["difference"], e.get("interval"),
                                  e.get("interval_seeds_and_test_images")))
    if not items:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(items) + 1.2))
    y = np.arange(len(items))[::-1]
    x = [i[1] for i in items]

    def err(j):
        return np.maximum(np.array([[i[1] - i[j][0] if i[j] else 0 for i in items],
                                    [i[j][1] - i[1] if i[j] else 0 for i in items]]), 0)
    ax.errorbar(x, y, xerr=err(3), fmt="none", ecolor="#999", elinewidth=1, capsize=2)
    ax.errorbar(x, y, xerr=err(2), fmt="o", elinewidth=2.5, capsize=3)
    ax.axvline(0, color="#888", lw=1)
    ax.set_yticks(y, [i[0] for i in items], fontsize=8)
    ax.set_xlabel("Δ balanced accuracy (method − control)")
    return _png(fig)


def write_table(out: Path, t: dict) -> dict:
    """DIR/bench.json, bench.md (its figures in DIR/figures/), bench.html (self-contained); all atomic."""
    from medlt.report.write import json_safe
    from medlt.utils.atomic import atomic_write_bytes

    out = Path(out)
    paths = {"json": atomic_write_text(out / "bench.json", json.dumps(json_safe(t), indent=1, allow_nan=False) + "\n")}
    blocks = table_blocks(t)
    for blk in blocks:
        if blk[0] == "img":
            atomic_write_bytes(out / "figures" / blk[1], blk[2])
    paths["md"] = atomic_write_text(out / "bench.md", to_markdown(blocks))
    paths["html"] = atomic_write_text(out / "bench.html", to_html(blocks, "medlt bench"))
    paths["md_text"] = to_markdown(table_blocks(t, figures=False))
    return paths

