"""The label-sensitivity diagnostic: exactly 0 for a generator whose label path is cut, positive when the
label acts, deterministic, and `medlt label-sensitivity` with its error paths."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from medlt.diffusion.label_sensitivity import base_and_flipped, label_sensitivity
from medlt.diffusion.sample import load_generator
from medlt.diffusion.train import train
from tests.cli_run import run_cli
from tests.diffusion.toy import NAMES, toy_data, toy_recipe


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    out = {}
    for key, ml, mode in ((False, False, None), (True, True, "time-embedding"), ("adaptive", True, "adaptive-norm")):
        tmp = tmp_path_factory.mktemp(str(key))
        sets = [f"model.multi_label_conditioning={mode}"] if ml else []
        out[key] = train(toy_recipe(tmp, sets, multi_label=ml), tmp / "run", data=toy_data(multi_label=ml))
    return out


def test_base_and_flipped():
    b, f = base_and_flipped(0, 3, False, [12, 8, 4], 2)
    assert b.tolist() == [1, 1] and f.tolist() == [0, 0]  # class 0 is the head: compared with the next one
    b, f = base_and_flipped(2, 3, False, [12, 8, 4], 2)
    assert b.tolist() == [0, 0] and f.tolist() == [2, 2]
    b, f = base_and_flipped(1, 3, True, [12, 8, 4], 2)  # no "No Finding" class: no label set
    assert b.tolist() == [[0, 0, 0]] * 2 and f.tolist() == [[0, 1, 0]] * 2
    b, f = base_and_flipped(1, 3, True, [12, 8, 4], 2, no_finding=2)
    assert b.tolist() == [[0, 0, 1]] * 2 and f.tolist() == [[0, 1, 0]] * 2
    b, f = base_and_flipped(0, 3, True, [12, 8, 4], 1, no_finding=0)  # the no-finding class itself
    assert b.tolist() == [[0, 1, 0]] and f.tolist() == [[1, 0, 0]]


def test_multi_label_base_is_the_no_finding_class_not_zeros(checkpoints):
    """Where "No Finding" is a class (NIH-CXR-LT), the all-zero vector is no training vector: the base
    asked of the generator is "No Finding" alone (for "No Finding" itself, the most frequent other
    class alone), and the report names it."""
    from medlt.data.labels import LabelSpace

    gen = load_generator(checkpoints[True])
    gen.label_space = LabelSpace(("No Finding", "beta", "gamma"), True)  # training counts 12, 8, 4
    asked = []
    generate = gen.generate

    def spy(labels, seeds, **kw):
        asked.append(labels.tolist())
        return generate(labels, seeds, **kw)

    gen.generate = spy
    rep = label_sensitivity(gen, per_class=1, timesteps=(50,), num_inference_steps=2)
    # per class: base, flipped, base with other seeds
    assert [a[0] for a in asked[0::3]] == [[0, 1, 0], [1, 0, 0], [1, 0, 0]]
    assert [a[0] for a in asked[1::3]] == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert all(0 < sum(sum(r) for r in a) for a in asked)  # never the all-zero vector
    assert rep["per_class"]["gamma"]["base"] == ["No Finding"] and rep["per_class"]["gamma"]["flipped"] == ["gamma"]
    assert rep["per_class"]["No Finding"]["base"] == ["beta"]
    assert rep["base"].startswith("'No Finding' alone")


def _cut_label_path(gen) -> None:
    """Make the label irrelevant: every class embedding row equal (single-label), or the label
    projection's weight zero (multi-label time embedding, so every label vector gives its bias)."""
    m = gen.model
    with torch.no_grad():
        if gen.label_space.multi_label:
            m.label_proj.weight.zero_()
        else:
            w = m.unet.class_embedding.weight
            w.copy_(w[:1].expand_as(w))


@pytest.mark.parametrize("multi_label", [False, True, "adaptive"])
def test_zero_when_the_label_is_ignored_and_positive_when_it_acts(checkpoints, multi_label):
    kw = {"per_class": 2, "timesteps": (10, 50, 90), "num_inference_steps": 3, "guidance_scale": 1.5}
    gen = load_generator(checkpoints[multi_label])
    acts = label_sensitivity(gen, **kw)
    assert acts == label_sensitivity(gen, **kw)  # seeded: the same numbers again
    assert set(acts["per_class"]) == set(NAMES) and acts["multi_label"] is bool(multi_label)
    for e in acts["per_class"].values():
        assert e["sample_ratio"] > 0 and e["sample_seed_change"] > 0
        for t in ("10", "50", "90"):
            p = e["per_timestep"][t]
            assert p["label_change"] > 0 and p["noise_change"] > 0
            assert p["ratio"] == pytest.approx(p["label_change"] / p["noise_change"])
    _cut_label_path(gen)
    cut = label_sensitivity(gen, **kw)
    for e in cut["per_class"].values():
        assert e["sample_label_change"] == 0.0 and e["sample_ratio"] == 0.0
        assert all(p["label_change"] == 0.0 for p in e["per_timestep"].values())
        assert e["sample_seed_change"] > 0  # the noise still acts
    assert cut["summary"]["all"]["sample_ratio"] == 0.0
    emb = [p["embedding_ratio"] for e in cut["per_class"].values() for p in e["per_timestep"].values()]
    assert emb == ([0.0] * 9 if multi_label else [None] * 9)  # the label's share of the time embedding


def test_embedding_ratio_is_the_models_label_over_time_embedding(checkpoints):
    gen = load_generator(checkpoints["adaptive"])
    rep = label_sensitivity(gen, per_class=1, timesteps=(20, 80), num_inference_steps=2)
    assert rep["conditioning"] == "adaptive-norm"
    y = torch.eye(3)[1:2]
    want = float(gen.model.label_embedding_ratio(y, torch.zeros_like(y), torch.tensor([80])))
    assert want > 0 and rep["per_class"]["beta"]["per_timestep"]["80"]["embedding_ratio"] == pytest.approx(want)
    e = [p["embedding_ratio"] for c in rep["per_class"].values() for p in c["per_timestep"].values()]
    assert rep["summary"]["all"]["embedding_ratio"] == pytest.approx(sum(e) / len(e))


def test_cli_compares_checkpoints_side_by_side(checkpoints, tmp_path, capsys):
    out = tmp_path / "cmp"
    a, b = checkpoints[True], checkpoints["adaptive"]
    code, so, se = run_cli(["label-sensitivity", _recipe_file(tmp_path, multi_label=True), "-c", a, "-c", b,
                            "--out", out, "--per-class", "1", "--timesteps", "50", "--device", "cpu"], capsys)
    assert code == 0, se
    cmp = json.loads((out / "comparison.json").read_text())
    assert [v["conditioning"] for v in cmp.values()] == ["time-embedding", "adaptive-norm"]
    for name in cmp:  # each checkpoint's full report, measured with the same seeds as a single run
        one = json.loads((out / name / "label_sensitivity.json").read_text())
        assert one["summary"] == cmp[name]["summary"]
    single = tmp_path / "single"
    assert run_cli(["label-sensitivity", _recipe_file(tmp_path, multi_label=True), "-c", b, "--out", single,
                    "--per-class", "1", "--timesteps", "50", "--device", "cpu"], capsys)[0] == 0
    assert json.loads((single / "label_sensitivity.json").read_text())["per_class"] == \
        json.loads((out / list(cmp)[1] / "label_sensitivity.json").read_text())["per_class"]
    md = (out / "comparison.md").read_text()
    assert md in capsys.readouterr().out or md.splitlines()[0] in so
    assert "| time-embedding |" in md and "| adaptive-norm |" in md
    code, so, se = run_cli(["label-sensitivity", _recipe_file(tmp_path, multi_label=True), "-c", a, "-c", a,
                            "--out", tmp_path / "dup", "--device", "cpu"], capsys)
    assert code == 2 and "the same checkpoint is given twice" in se
    assert all(v["differing_model_keys"] == ["model.multi_label_conditioning"] for v in cmp.values())
    assert "differ in: model.multi_label_conditioning" in md


def test_cli_reused_out_holds_only_the_new_reports(checkpoints, tmp_path, capsys):
    """A single run into the folder of an earlier comparison leaves no comparison beside its report,
    and a comparison into the folder of a single run leaves no single report; other files stay."""
    out = tmp_path / "ls"
    rf = _recipe_file(tmp_path, multi_label=True)
    a, b = checkpoints[True], checkpoints["adaptive"]
    common = ["--out", out, "--per-class", "1", "--timesteps", "50", "--steps", "2", "--device", "cpu"]
    assert run_cli(["label-sensitivity", rf, "-c", a, "-c", b, *common], capsys)[0] == 0
    subfolders = [p.name for p in out.iterdir() if p.is_dir()]
    assert len(subfolders) == 2 and (out / "comparison.md").is_file()
    (out / "notes.txt").write_text("mine")
    assert run_cli(["label-sensitivity", rf, "-c", b, *common], capsys)[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["label_sensitivity.json", "label_sensitivity.md", "notes.txt"]
    assert run_cli(["label-sensitivity", rf, "-c", b, "-c", a, *common], capsys)[0] == 0
    assert not (out / "label_sensitivity.json").exists() and (out / "notes.txt").read_text() == "mine"
    assert list(json.loads((out / "comparison.json").read_text())) == list(reversed(subfolders))


def test_cli_refuses_to_compare_checkpoints_of_other_num_train_timesteps(checkpoints, tmp_path, capsys):
    """t = 50 is the middle of a 100-step schedule but the end of a 50-step one: the columns would lie."""
    short = train(toy_recipe(tmp_path, ["diffusion.num_train_timesteps=50"]), tmp_path / "t50", data=toy_data())
    for extra in ([], ["--timesteps", "20"]):
        code, so, se = run_cli(["label-sensitivity", _recipe_file(tmp_path), "-c", checkpoints[False], "-c", short,
                                "--out", tmp_path / "o", "--per-class", "1", "--device", "cpu", *extra], capsys)
        assert code == 2 and "num_train_timesteps=100" in se and str(short) in se, se
        assert str(checkpoints[False]) in se and len(se.strip().splitlines()) == 1, se
        assert not (tmp_path / "o").exists()


def test_cli_compare_takes_the_compared_key_from_each_checkpoint(checkpoints, tmp_path, capsys):
    """A recipe that sets the design can match one checkpoint only: side by side, the key on which the
    checkpoints differ comes from each; alone, a conflicting key is still refused."""
    a, b = checkpoints[True], checkpoints["adaptive"]
    rf = _recipe_file(tmp_path, multi_label=True)
    common = ["--per-class", "1", "--timesteps", "50", "--device", "cpu", "--set",
              "model.multi_label_conditioning=time-embedding"]
    code, so, se = run_cli(["label-sensitivity", rf, "-c", a, "-c", b, "--out", tmp_path / "cmp", *common], capsys)
    assert code == 0, se
    code, so, se = run_cli(["label-sensitivity", rf, "-c", b, "--out", tmp_path / "one", *common], capsys)
    assert code != 0 and "model.multi_label_conditioning" in se and "adaptive-norm" in se
    # a key on which the checkpoints agree is still checked against the recipe
    code, so, se = run_cli(["label-sensitivity", rf, "-c", a, "-c", b, "--out", tmp_path / "cmp2", *common,
                            "--set", "model.num_res_blocks=2"], capsys)
    assert code != 0 and "model.num_res_blocks" in se


def test_summary_means_per_group(checkpoints):
    rep = label_sensitivity(load_generator(checkpoints[False]), per_class=1, timesteps=(50,), num_inference_steps=2,
                            group_thresholds=(5, 10))
    groups = {n: e["group"] for n, e in rep["per_class"].items()}
    assert groups == {"alpha": "head", "beta": "medium", "gamma": "tail"}  # training counts 12, 8, 4
    r = {n: e["per_timestep"]["50"]["ratio"] for n, e in rep["per_class"].items()}
    assert rep["summary"]["all"]["ratio_t50"] == pytest.approx(sum(r.values()) / 3)
    assert rep["summary"]["tail"]["ratio_t50"] == pytest.approx(r["gamma"])


def _recipe_file(tmp_path, multi_label=False):
    p = tmp_path / "r.yaml"
    p.write_text(yaml.safe_dump({
        "name": "toy", "seed": 3,
        "data": {"format": "manifest", "root": str(tmp_path), "classes": list(NAMES), "multi_label": multi_label,
                 "image_size": [8, 8]},
        "model": {"spatial_dims": 2, "channels": [8, 16], "attention_levels": [False, True], "num_res_blocks": 1,
                  "num_head_channels": 8, "norm_num_groups": 4, "cross_attention_dim": 16},
        "diffusion": {"num_train_timesteps": 100},
        "sampling": {"num_inference_steps": 3, "batch_size": 8}}))
    return p


def test_cli_writes_json_and_table(checkpoints, tmp_path, capsys):
    out = tmp_path / "ls"
    code, so, se = run_cli(["label-sensitivity", _recipe_file(tmp_path), "-c", checkpoints[False], "--out", out,
                            "--per-class", "2", "--timesteps", "10,90", "--device", "cpu"], capsys)
    assert code == 0, se
    rep = json.loads((out / "label_sensitivity.json").read_text())
    assert rep["timesteps"] == [10, 90] and rep["per_class_images"] == 2 and len(rep["checkpoint_sha256"]) == 64
    assert "| alpha | " in so and (out / "label_sensitivity.md").read_text() in so


@pytest.mark.parametrize("args, message", [
    (["--timesteps", "10,100"], "--timesteps must lie in [0, 100)"),
    (["--timesteps", "-1"], "--timesteps must lie in [0, 100)"),
    (["--timesteps", "ten"], "comma-separated integers expected"),
    (["--timesteps", "10,,50"], "--timesteps '10,,50': an empty item"),
    (["--timesteps", "10,"], "--timesteps '10,': an empty item"),
    (["--timesteps", "10,10"], "--timesteps '10,10': '10' is given twice"),
    (["--timesteps", ""], "--timesteps '': empty"),
    (["--steps", "0"], "--steps must be between 1"),
    (["--steps", "101"], "--steps must be between 1"),
    (["--guidance", "-1"], "--guidance must be >= 0"),
])
def test_cli_errors_are_one_line_with_exit_2(checkpoints, tmp_path, capsys, args, message):
    """Command-line values out of range or malformed are usage errors: exit 2, one line naming the option."""
    code, so, se = run_cli(["label-sensitivity", _recipe_file(tmp_path), "-c", checkpoints[False], "--out",
                            tmp_path / "o", "--device", "cpu", *args], capsys)
    assert code == 2 and message in se and len(se.strip().splitlines()) == 1, se
    assert not (tmp_path / "o" / "label_sensitivity.json").exists()


def test_cli_out_is_a_file(checkpoints, tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    code, so, se = run_cli(["label-sensitivity", _recipe_file(tmp_path), "-c", checkpoints[False], "--out", f,
                            "--device", "cpu"], capsys)
    assert code != 0 and "is a file, not a folder" in se
