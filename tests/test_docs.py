"""The documentation stands on its own: nothing tracked points outside the repository, and every
relative link in README.md and docs/*.md resolves (the file exists; an #anchor names a heading)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# built from pieces so that this file does not match itself
FORBIDDEN = ("../" + "shared", "DESIGN" + ".md", "DESIGN" + " §", "CONTRACTS" + ".md", "CONTRACTS" + " interface")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
DOCS = ("methods.md", "datasets.md", "evaluation.md", "README.md")


def tracked_files() -> list[Path]:
    """Tracked files plus new files git does not ignore (what the next commit could add)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the tracked-file scan needs git")
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / p for p in out.decode().split("\0") if p]


def slug(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(md: Path) -> set[str]:
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*$", md.read_text(encoding="utf-8"), re.M)}


def broken_links(md: Path) -> list[str]:
    bad = []
    for target in LINK.findall(md.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (md.parent / path).resolve() if path else md
        if not dest.exists():
            bad.append(f"{md.relative_to(ROOT)}: {target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{md.relative_to(ROOT)}: {target} (no heading with that anchor)")
    return bad


def test_no_tracked_file_points_outside_the_repository():
    hits = []
    for f in tracked_files():
        if not f.is_file():
            continue  # deleted in the work tree
        try:
            text = f.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary
        for n, line in enumerate(text.splitlines(), 1):
            for needle in FORBIDDEN:
                if needle in line:
                    hits.append(f"{f.relative_to(ROOT)}:{n}: {needle}")
    assert not hits, "references to files outside the repository:\n" + "\n".join(hits)


def test_docs_exist_and_readme_links_every_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in DOCS:
        assert (ROOT / "docs" / name).is_file(), f"docs/{name} is missing"
    linked = {t.partition("#")[0] for t in LINK.findall(readme)}
    for name in ("methods.md", "datasets.md", "evaluation.md"):
        assert f"docs/{name}" in linked, f"README.md does not link docs/{name}"


@pytest.mark.parametrize("md", ["README.md", *[f"docs/{d}" for d in DOCS], "medlt/diffusion/README.md"])
def test_relative_links_resolve(md):
    assert broken_links(ROOT / md) == []


def test_link_checker_catches_a_broken_link_and_a_bad_anchor(tmp_path, monkeypatch):
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    (tmp_path / "a.md").write_text("# Real heading, with punctuation\n[x](b.md) [y](a.md#nope) "
                                   "[z](#real-heading-with-punctuation) [w](https://example.org/x)\n")
    bad = broken_links(tmp_path / "a.md")
    assert bad == ["a.md: b.md (no such file)", "a.md: a.md#nope (no heading with that anchor)"]


def test_slug_matches_github_for_the_headings_we_link():
    assert slug("## 2. Long-tail regularizers".lstrip("# ")) == "2-long-tail-regularizers"
    assert slug("Overlap-contrastive term (DiffROP, Yan et al., 2024)") == \
        "overlap-contrastive-term-diffrop-yan-et-al-2024"
    assert slug("Head, medium and tail") == "head-medium-and-tail"
