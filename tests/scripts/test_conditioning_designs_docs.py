"""docs/methods.md's multi-label NIH setup, as written, validates on the multi-label NIH phantom, and it
is the setup scripts/conditioning_designs.py measures with."""

from __future__ import annotations

import importlib.util
import re

from tests.cli_run import run_cli


def _documented_sets(repo_root) -> list[str]:
    """The `data.key=value` overrides named in the paragraph that introduces the NIH table."""
    text = (repo_root / "docs" / "methods.md").read_text(encoding="utf-8")
    start = text.index("Multi-label NIH phantom (`medlt phantom --layout nih-cxr-lt --multi-label`")
    paragraph = text[start:text.index("\n\n", start)]
    assert "recipes/phantom/nih_cxr_lt.yaml" in paragraph
    return re.findall(r"`(data\.[\w.]+=[^`\s]+)`", paragraph)


def test_documented_nih_multi_label_setup_validates(repo_root, tmp_path, capsys):
    sets = _documented_sets(repo_root)
    assert "data.multi_label=true" in sets
    ph = tmp_path / "nih-ml"
    code, _, se = run_cli(["phantom", "--layout", "nih-cxr-lt", "--out", ph, "--num-images", "30",
                           "--image-size", "32", "--multi-label"], capsys)
    assert code == 0, se
    overrides = [f"data.root={ph}", f"data.labels={ph}", *sets]
    code, so, se = run_cli(["data", "validate", repo_root / "recipes" / "phantom" / "nih_cxr_lt.yaml",
                            "--skip-images", *[x for kv in overrides for x in ("--set", kv)]], capsys)
    assert code == 0, so + se


def test_documented_setup_is_the_scripts(repo_root):
    spec = importlib.util.spec_from_file_location("conditioning_designs", repo_root / "scripts" / "conditioning_designs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert sorted(_documented_sets(repo_root)) == sorted(mod.LAYOUTS["nih-cxr-lt"]["sets"])
