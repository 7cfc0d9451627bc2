"""Report sections for the generation metrics of a synthetic set (report.json `generation`):
class-matched FID/KID per extractor (per class with n_real / n_synthetic, intervals and the
"too few images" markers; scopes with the classes that entered), CT 2.5D FID, diversity,
memorization ratios. Definitions in docs/evaluation.md. A plot with nothing to show is replaced
by a note, never drawn as empty axes."""

from __future__ import annotations

from pathlib import Path

from medlt.report import figures
from medlt.report.document import fmt

STATUS_TEXT = {"ok": "", "too_few_real_images": "too few real images",
               "too_few_synthetic_images": "too few synthetic images"}


def _ci(pair) -> str:
    if not pair or pair[0] is None or pair[1] is None:
        return "–"
    return f"{fmt(pair[0], 3)}–{fmt(pair[1], 3)}"


def _status(row: dict, settings: dict) -> str:
    s = STATUS_TEXT.get(row["status"], row["status"])
    if row["status"] == "too_few_real_images":
        s += f" (< {settings['min_real_per_class']}; excluded from every mean)"
    elif row["status"] == "too_few_synthetic_images":
        s += f" (< {settings['min_synthetic_per_class']}; excluded from every mean)"
    elif not row.get("at_fixed_n", True):
        s = f"fewer synthetic than the fixed n = {settings['fid_samples_per_class']}"
    return s or "ok"


def _plot_or_note(b: list, file_name: str, names, series: dict, *, ylabel: str, title: str, what: str,
                  errors=None) -> None:
    if not figures.has_values(series):
        b.append(("p", f"No plot of {what}: no class has a value."))
        return
    b.append(("img", file_name, figures.per_class_bars_png(names, series, ylabel=ylabel, title=title, ylim01=False,
                                                           errors=errors, missing_note="no value (too few images)"),
              title))


def fid_kid_blocks(fk: dict, names: list[str], tag: str, title_suffix: str) -> list[tuple]:
    b: list[tuple] = []
    st = fk["settings"]
    b.append(("p", f"Per class: all real training images of the class against a seeded subset of "
                   f"{st['fid_samples_per_class']} synthetic images of it (the same n for every class, so values "
                   f"are comparable; FID is biased upwards at small n). Classes with fewer than "
                   f"{st['min_real_per_class']} real or {st['min_synthetic_per_class']} synthetic images get no value "
                   f"and enter no mean. FID 95% CI: {st['fid_ci95']} ({st['bootstrap_replicates']} replicates); "
                   f"KID interval: {st['kid_subset_interval95']}."))
    rows = []
    for n in names:
        r = fk["per_class"][n]
        rows.append([n, r["group"], r["n_real"], f"{r['n_synthetic']} of {r['n_synthetic_available']}",
                     r["fid"], _ci(r["fid_ci95"]), r["kid_mean"], r["kid_std"], _ci(r["kid_subset_interval95"]),
                     _status(r, st)])
    b.append(("table", ["class", "group", "n real", "n synthetic (used of available)", "FID", "FID 95% CI",
                        "KID mean", "KID std", "KID subset interval", "status"], rows))
    srows = []
    for s, v in fk["scopes"].items():
        excl = ", ".join(f"{c} ({STATUS_TEXT.get(r, r)})" for c, r in v["excluded"].items()) or "–"
        srows.append([s, ", ".join(v["classes"]) or "none", excl, v["n_real"], v["n_synthetic"], v["fid"],
                      _ci(v["fid_ci95"]), v["kid_mean"], v["kid_std"], v["mean_per_class_fid"],
                      v["mean_per_class_kid"]])
    b.append(("p", "Scopes are class-matched: the entered classes weigh the same (uniform) on the real and the "
                   "synthetic side; FID between the mixtures of per-class moments, KID over subsets stratified "
                   "by the same weights. Beside them, the plain mean of the entered classes' per-class values."))
    b.append(("table", ["scope", "classes entered", "excluded", "n real", "n synthetic", "FID", "FID 95% CI",
                        "KID mean", "KID std", "mean per-class FID", "mean per-class KID"], srows))
    p = fk["pooled"]
    b.append(("p", f"Pooled (not class-matched) FID {fmt(p['fid'])}, KID {fmt(p['kid_mean'])} over {p['n_real']} real "
                   f"and {p['n_synthetic']} synthetic images: {p['note']}."))
    fids = [fk["per_class"][n]["fid"] for n in names]
    errs = [fk["per_class"][n]["fid_ci95"] for n in names]
    _plot_or_note(b, f"fid_per_class_{tag}.png", names, {"FID": fids}, ylabel="FID", what="per-class FID",
                  title=f"Per-class FID with 95% CI ({title_suffix})", errors={"FID": errs})
    _plot_or_note(b, f"kid_per_class_{tag}.png", names, {"KID": [fk["per_class"][n]["kid_mean"] for n in names]},
                  ylabel="KID", what="per-class KID", title=f"Per-class KID ({title_suffix})")
    return b


def memorization_blocks(mem: dict, names: list[str], tag: str, title_suffix: str, out_dir) -> list[tuple]:
    b: list[tuple] = []
    o = mem["overall"]
    b.append(("p", f"{mem['definition']}. Identical-vector tolerance {fmt(mem['identical_tolerance'])}; "
                   f"{mem['n_real_with_exact_duplicate']} of {mem['n_real']} real images have an exact duplicate. "
                   f"Flagged overall: {o['n_flagged']} of {o['n_synthetic']} ({fmt(o['flagged_rate'])}), "
                   f"{o['n_exact_copies']} exact copies."))
    if mem["per_group"]:
        b.append(("table", ["group", "synthetic", "flagged", "rate", "exact copies"],
                  [[g, v["n_synthetic"], v["n_flagged"], v["flagged_rate"], v["n_exact_copies"]]
                   for g, v in mem["per_group"].items()]))
    b.append(("table", ["class", "group", "synthetic", "flagged", "rate", "exact copies", "smallest ratio"],
              [[n, mem["per_class"][n]["group"], mem["per_class"][n]["n_synthetic"], mem["per_class"][n]["n_flagged"],
                mem["per_class"][n]["flagged_rate"], mem["per_class"][n]["n_exact_copies"],
                mem["per_class"][n]["min_ratio"]] for n in names]))
    hist = mem["ratio_histogram"]
    if sum(hist["counts"]):
        b.append(("img", f"memorization_ratios_{tag}.png",
                  figures.ratio_histogram_png(hist["bin_edges"], hist["counts"], mem["ratio_threshold"],
                                              title=f"Distance ratios of the synthetic images ({title_suffix})"),
                  f"Distance ratios ({title_suffix})"))
    else:
        b.append(("p", "No ratio histogram: no synthetic image has a defined ratio."))
    pairs = mem["closest_pairs"]
    b.append(("table", ["rank", "synthetic id", "real id", "classes", "ratio", "d(s, r*)", "d(r*, nn)", "flagged",
                        "image"],
              [[i, p["synthetic_id"], p["real_id"], ", ".join(p["classes"]), p["ratio"], p["distance_synthetic_real"],
                p["distance_real_nearest_other_real"], p["flagged"], p.get("png", "")] for i, p in enumerate(pairs)]))
    for i, p in enumerate(pairs[:4]):
        if out_dir and p.get("png") and (Path(out_dir) / p["png"]).is_file():
            b.append(("img", f"pair_{tag}_{i:02d}.png", (Path(out_dir) / p["png"]).read_bytes(),
                      f"Smallest ratio {i}: synthetic {p['synthetic_id']} vs real {p['real_id']}"))
    return b


def fid_2_5d_blocks(f25: dict, names: list[str]) -> list[tuple]:
    b: list[tuple] = [("h", 3, f"CT 2.5D FID ({f25['feature_extractor']}) and 3D-feature FID")]
    slices = ", ".join(f"{p} {f25['slices_per_volume'].get(p, '?')}" for p in f25["planes"])
    b.append(("p", f"2.5D: {f25['definition']}. Central fraction {f25['center_slices_ratio']:g} of the slices, every "
                   f"{f25['slice_stride']}-th: slices per volume {slices}. 3D-feature FID overall: "
                   + "; ".join(f"`{n}` {fmt(v)}" for n, v in f25["fid_3d_features"].items()) + "."))
    scopes = list(f25["per_plane"][f25["planes"][0]]["scopes"])
    rows = [[s, f25["mean_of_planes"].get(s)] + [f25["per_plane"][p]["scopes"][s]["fid"] for p in f25["planes"]]
            for s in scopes]
    rows += [[f"class:{n}", f25["mean_of_planes"].get(f"class:{n}")]
             + [f25["per_plane"][p]["per_class"][n]["fid"] for p in f25["planes"]] for n in names]
    b.append(("table", ["scope", "2.5D FID (mean of planes)"] + [f"{p} FID" for p in f25["planes"]], rows))
    b.append(("table", ["plane", "real slices", "synthetic slices"],
              [[p, f25["n_slices"][p]["real"], f25["n_slices"][p]["synthetic"]] for p in f25["planes"]]))
    return b


def diversity_blocks(div: dict, names: list[str]) -> list[tuple]:
    s = div["settings"]
    std = "the standard MS-SSIM settings" if s.get("standard_ms_ssim") else "not the standard 11-px/5-scale settings"
    return [("h", 3, "Diversity (mean pairwise MS-SSIM within class; lower = more diverse)"),
            ("p", f"MONAI MultiScaleSSIMMetric, Gaussian window {s['kernel_size']} px (σ {s.get('kernel_sigma', 1.5)}), "
                  f"{len(s['weights'])} scale(s) with weights {[round(w, 4) for w in s['weights']]} ({std}; "
                  f"{s.get('chosen', 'recipe')} for a smallest side of {s.get('smallest_side_px', '?')} px), data "
                  f"range 2; at most {s['max_pairs_per_class']} pairs per class. Mean over classes: "
                  f"{fmt(div['mean_ms_ssim'])}."),
            ("table", ["class", "pairs", "MS-SSIM"],
             [[n, div["per_class_pairs"][n], div["per_class_ms_ssim"][n]] for n in names])]


def generation_blocks(result: dict, assets: dict) -> list[tuple]:
    gen = result.get("generation")
    if not gen:
        return []
    names = result["label_space"]["names"]
    b: list[tuple] = [("h", 2, "Synthetic images")]
    exts = gen["feature_extractors"]
    b.append(("p", f"{gen['n_synthetic']} synthetic images from `{gen['synthetic_dir']}` against {gen['n_real_train']} "
                   f"real images ({gen.get('real_reference', 'real training split')}). Feature extractors: "
                   + "; ".join(f"`{e['name']}` (sha256 `{(e.get('sha256') or '?')[:16]}…`)" for e in exts)
                   + ". FID, KID and distance ratios are only comparable under the same extractor."))
    if gen.get("warning"):
        b.append(("p", "Warning: " + gen["warning"]))
    for j, e in enumerate(exts):
        block = gen["by_extractor"][e["name"]]
        tag = f"e{j}"
        b.append(("h", 3, f"FID and KID ({e['name']})"))
        b += fid_kid_blocks(block["fid_kid"], names, tag, e["name"])
    if "fid_2_5d" in gen:
        b += fid_2_5d_blocks(gen["fid_2_5d"], names)
    b += diversity_blocks(gen["diversity"], names)
    for j, e in enumerate(exts):
        b.append(("h", 3, f"Memorization ({e['name']})"))
        b += memorization_blocks(gen["by_extractor"][e["name"]]["memorization"], names, f"e{j}", e["name"],
                                 assets.get("out_dir"))
    if assets.get("grid"):
        per = max((len(v["real"]) for v in assets["grid"].values()), default=0) or 1
        b.append(("img", "samples.png", figures.sample_grid_png(assets["grid"], per),
                  "Samples per class, real beside synthetic"))
    return b
