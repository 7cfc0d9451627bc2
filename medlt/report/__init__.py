"""Reports: report.json / report.md / self-contained report.html with plots; run comparison.

Public: `write_report(out_dir, result, assets)`, `compare_markdown(dirs)`, `compare_html(dirs)`."""

from __future__ import annotations


def write_report(out_dir, result, assets=None):
    from medlt.report.write import write_report as _w

    return _w(out_dir, result, assets)


def compare_markdown(dirs):
    from medlt.report.compare import compare_markdown as _c

    return _c(dirs)


def compare_html(dirs):
    from medlt.report.compare import compare_html as _c

    return _c(dirs)
