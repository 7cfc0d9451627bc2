"""Latent diffusion on a phantom, as a new user would run it, then class fidelity with a phantom
oracle: phantom -> train-autoencoder -> evaluate-autoencoder -> train (model.latent) -> synth ->
data validate (synth's merged.recipe.yaml) -> a balanced probe set (N per class, the same generator;
the downstream quota to_head gives the head classes no synthetic image at all) -> medlt oracle ->
class fidelity of the probe per group vs chance.

    OMP_NUM_THREADS=1 python scripts/latent_phantom.py --layout ct-rate --work /tmp/latent-ct
    OMP_NUM_THREADS=1 python scripts/latent_phantom.py --layout nih-cxr-lt --work /tmp/latent-nih

Every step is skipped when its output exists (re-run to continue). `--set` overrides go to every
recipe-reading verb (e.g. --set training.max_steps=100 for a quicker check). Prints and writes
WORK/fidelity.json: the oracle's class fidelity of the synthetic set per group and its chance level
(single-label: share assigned to the intended class, chance 1/K; multi-label: per-class AUROC of the
intended label, chance 0.5).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPES = {"ct-rate": REPO / "recipes" / "phantom" / "ct_rate_latent.yaml",
           "nih-cxr-lt": REPO / "recipes" / "phantom" / "nih_cxr_lt_latent.yaml"}
# CT: 160 training scans (209 volumes) give five head classes of > 30 positives
PHANTOM_ARGS = {"ct-rate": ["-n", "160"], "nih-cxr-lt": ["-s", "128"]}
ORACLE_ARGS = {"ct-rate": ["--per-class", "120", "--set", "classifier.epochs=25", "--set", "classifier.lr=0.003"],
               "nih-cxr-lt": ["--per-class", "60", "--set", "classifier.epochs=8"]}


def medlt(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "MEDLT_PROGRESS": os.environ.get("MEDLT_PROGRESS", "lines")}
    print("$ medlt", " ".join(map(str, args)), flush=True)
    r = subprocess.run([sys.executable, "-m", "medlt", *map(str, args)], env=env, cwd=str(REPO),
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"medlt {args[0]} failed:\n{r.stderr[-3000:]}")
    if r.stdout.strip():
        print(r.stdout.strip()[-1500:], flush=True)
    return r


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layout", choices=list(RECIPES), required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--oracle", type=Path, help="an existing `medlt oracle` run (default: WORK/oracle)")
    ap.add_argument("--probe-per-class", type=int, default=16, help="synthetic images per class of the "
                    "balanced probe set that the oracle judges (default 16)")
    a = ap.parse_args(argv)
    w = a.work.resolve()
    recipe = RECIPES[a.layout]
    ph, ae, ldm, syn, probe = w / "phantom", w / "ae", w / "ldm", w / "syn", w / "probe"
    sets = [f"data.root={ph}", f"data.labels={ph}", f"model.latent.autoencoder={ae}", *a.sets]
    s = [x for kv in sets for x in ("--set", kv)]
    if not (ph / "phantom.json").exists() and not any(ph.glob("*.csv")) and not (ph / "dataset").exists():
        medlt("phantom", "--layout", a.layout, "--out", ph, *PHANTOM_ARGS[a.layout])
    if not (ae / "checkpoints" / "last.pt").is_file():
        medlt("train-autoencoder", recipe, "--out", ae, *s)
    if not (ae / "eval" / "report.json").is_file():
        medlt("evaluate-autoencoder", recipe, "--autoencoder", ae, "--out", ae / "eval", *s)
    if not (ldm / "checkpoints" / "last.pt").is_file():
        medlt("train", recipe, "--out", ldm, *s)
    if not (syn / "manifest.csv").is_file():
        medlt("synth", recipe, "--checkpoint", ldm, "--out", syn, *s)
    r = medlt("data", "validate", syn / "merged.recipe.yaml")
    assert r.stdout.startswith("ok"), r.stdout
    oracle = a.oracle or w / "oracle"
    if a.oracle is None and not (oracle / "oracle.json").is_file():
        medlt("oracle", recipe, "--out", oracle, *s, *ORACLE_ARGS[a.layout])
    sys.path.insert(0, str(REPO))
    from medlt.bench.probe import write_probe
    from medlt.classify.reference import class_fidelity_of_synthetic, load_reference
    from medlt.data.table import load_table
    from medlt.recipe import load_recipe

    rec = load_recipe(recipe, sets)
    print(f"$ probe: {a.probe_per_class} synthetic images per class -> {probe}", flush=True)
    write_probe(rec, probe, ldm / "checkpoints" / "last.pt", a.probe_per_class)
    table = load_table(rec)
    ls = table.label_space
    groups = ls.groups(table.class_counts("train"), rec.data.group_thresholds)
    ref = load_reference(oracle, rec, ls)
    fid = class_fidelity_of_synthetic(rec, probe, ref, groups, batch_size=16)
    oracle_info = json.loads((oracle / "oracle.json").read_text()) if (oracle / "oracle.json").is_file() else {}
    if ls.multi_label:
        measure, chance = "group_mean_auroc", 0.5
        per_group, overall = fid["group_mean_auroc"], fid["mean_auroc"]
    else:
        measure, chance = "group_mean_fidelity", 1.0 / ls.num_classes
        per_group, overall = fid["group_mean_fidelity"], fid["mean_class_fidelity"]
    ae_rep = json.loads((ae / "eval" / "report.json").read_text())
    out = {"layout": a.layout, "judged": f"balanced probe, {a.probe_per_class} per class", "measure": measure,
           "chance": chance, "per_group": per_group, "overall": overall,
           "n_synthetic": fid.get("n_synthetic"), "oracle": oracle_info, "autoencoder_psnr_db_per_group":
           ae_rep["per_group"]["psnr_db"], "fidelity": fid}
    (w / "fidelity.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(f"class fidelity ({measure}) per group: {per_group}; overall {overall}; chance {chance:.3f}")
    key, ci, n = ("auroc", "auroc_ci95", "n_intended") if ls.multi_label else ("fidelity", "ci95", "n_synthetic")
    for name, row in fid["per_class"].items():
        if row.get("group") == "head":
            lo, hi = row.get(ci) or (float("nan"), float("nan"))
            print(f"  head class {name}: {key} {row.get(key, float('nan')):.3f} [{lo:.3f}, {hi:.3f}] "
                  f"(n = {row.get(n)}; chance {chance:.3f})")
    return out


if __name__ == "__main__":
    main()
