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
the point value and percentile interval of the mean paired difference (medlt.bench.paired_mean),
and the SDs of the per-cell differences as above.
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
    m["judge_real_recall"] = ({n: _num((pc.get(n) or {}).get("judge_real_recall")) for n in names}
                              if pc and any("judge_real_recall" in (pc.get(n) or {}) for n in names) else None)
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
    judge_recall: dict = {}

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
        out = {"n_pairs": diff["n_pairs"], "bootstrap": {k: diff[k] for k in ("n_resamples", "seed", "level",
                                                                           "resampling")}}
        for key, dk in (("all", "headline"), *((g, g) for g in GROUPS)):
            agg = aggregate({g: {k: v[key] for k, v in r.items()} for g, r in grid.items()})
            out[key] = {"mean_paired_difference": diff[dk], **agg}
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
                jr = by_dir[d]["metrics"].get("judge_real_recall")
                if jr and not judge_recall:
                    judge_recall.update(jr)
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
                       "test images; vs plain: same generator seed too) with a percentile bootstrap interval "
                       "over test images. headroom = bAcc(ideal) - bAcc(copies) (phantoms: ideal = new phantom "
                       "images for the same plan); share_of_headroom = (method - copies) / headroom, numerator "
                       "and denominator bootstrapped on the same resamples, shown only where the headroom's "
                       "interval lies above 0. classes_entered: [classes that entered, classes of the scope] "
                       "per scoped number (FID/KID: enough real and synthetic images; fidelity: classes the "
                       "judge recognises on real test images)."),
        "settings": settings,
        "judge": {"kind": judge.kind, "source": judge.source, "reference_classifier": str(judge.reference),
                  "feature_extractor": str(judge.extractor), "feature_extractor_name": ext_name,
                  "features_trained_on_compared_images": judge.trained_on_compared_images,
                  "real_recall_per_class": judge_recall or None,
                  "min_real_recall": float(_get(first, "recipe", "evaluate", "judge_min_real_recall") or 0.5),
                  "classes_it_cannot_recognise": sorted(
                      (n for n, v in judge_recall.items()
                       if v is None or v < float(_get(first, "recipe", "evaluate", "judge_min_real_recall") or 0.5)),
                      key=ls.names.index) if judge_recall else None},
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


def _delta(d: dict | None) -> str:
    if not d or not d.get("mean_paired_difference"):
        return "–"
    e = d["mean_paired_difference"]
    iv = e.get("interval")
    s = f"{e['difference']:+.3f}"
    if iv:
        s += f" [{iv[0]:+.3f}, {iv[1]:+.3f}]" + ("" if e["significant"] else " n.s.")
    return s


def _counts(row: dict, key: str) -> str:
    """' (e/n)' for a scoped number: how many of the scope's classes entered it (e.g. FID tail (2/10))."""
    seen = (row.get("classes_entered") or {}).get(key)
    if not seen:
        return ""
    es, ns = sorted({e for e, _ in seen}), sorted({n for _, n in seen})
    e = str(es[0]) if len(es) == 1 else f"{es[0]}–{es[-1]}"
    return f" ({e}/{ns[0] if len(ns) == 1 else '/'.join(map(str, ns))})"


def _share(d: dict | None) -> str:
    if not d:
        return "–"
    if not d.get("shown"):
        return "no headroom"
    sh = d["share"]
    iv = sh["interval"]
    return f"{sh['value']:+.2f} [{iv[0]:+.2f}, {iv[1]:+.2f}]"


def _headroom_text(t: dict) -> str | None:
    h = t.get("headroom")
    if not h or not h.get("headline"):
        return None
    e = h["headline"]
    iv = e["interval"]
    tail = h.get("tail")
    tail_s = (f"; tail {tail['difference']:+.3f} [{tail['interval'][0]:+.3f}, {tail['interval'][1]:+.3f}]"
              if tail else "")
    s = (f"Headroom (bAcc of the ideal arm − bAcc of copies, mean paired difference over classifier seeds): "
         f"{e['difference']:+.3f} [{iv[0]:+.3f}, {iv[1]:+.3f}]{tail_s}. ")
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
                   "difference to the control of the same classifier seed with its 95% bootstrap interval over "
                   "test images (n.s. = contains 0); it does not include seed noise, which the SDs show. (e/n) "
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
    jr = j.get("real_recall_per_class")
    if jr:
        bad = j.get("classes_it_cannot_recognise") or []
        b.append(("p", f"The judge's recall on the real test images of each class bounds that class's fidelity. "
                       f"Classes it recalls below {j.get('min_real_recall', 0.5):g} ("
                       + (", ".join(bad) if bad else "none") + ") are marked \"judge cannot recognise this class\" "
                       "and kept out of the fidelity means."))
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
        b.append(("table", ["class", "group", "judge recall on real test images",
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
    hdr = ["method", "bAcc", "bAcc head", "bAcc medium", "bAcc tail", "Δ bAcc vs real [95% CI]",
           "Δ tail vs real", "Δ bAcc vs copies [95% CI]", "Δ tail vs copies",
           *(["Δ bAcc vs plain [95% CI]"] if has_plain else []),
           *(["share of headroom closed [95% CI]", "share tail"] if has_share else []), "classifier wall s"]
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
    if figures:
        png = fidelity_png(t)
        if png:
            b.append(("img", "per_class_fidelity.png", png, "Class fidelity per class (mean over generator seeds), "
                      "classes ordered by training count (head left); dashed: the judge's recall on real test "
                      "images of the class, the ceiling of its fidelity."))
        png = delta_png(t)
        if png:
            b.append(("img", "delta_bacc.png", png, "Δ bAcc (all, tail) vs the real-only and copies controls, "
                      "mean paired difference with its 95% interval."))
    return b


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
    jr = (t.get("judge") or {}).get("real_recall_per_class")
    if jr:
        ax.plot(range(len(names)), [np.nan if jr.get(n) is None else jr[n] for n in names], ls="--", color="k",
                lw=1, label="judge recall on real (ceiling)")
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
                    items.append((f"{r['method']} vs {ctrl} ({key})", e["difference"], e.get("interval")))
    if not items:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(items) + 1.2))
    y = np.arange(len(items))[::-1]
    x = [i[1] for i in items]
    err = np.array([[i[1] - i[2][0] if i[2] else 0 for i in items], [i[2][1] - i[1] if i[2] else 0 for i in items]])
    ax.errorbar(x, y, xerr=np.maximum(err, 0), fmt="o", capsize=3)
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

