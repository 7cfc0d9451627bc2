"""Dataset statistics: images per split and class, head/medium/tail groups from the training
counts (data.group_thresholds), imbalance ratio (largest / smallest non-empty training class)."""

from __future__ import annotations

from medlt.data.table import Table


def compute_stats(table: Table) -> dict:
    """JSON-safe summary of a canonical table."""
    space = table.label_space
    names = list(space.names)
    splits = {}
    for split in table.splits:
        rows = table.split(split)
        counts = rows[names].sum(axis=0).astype(int)
        splits[split] = {
            "images": int(len(rows)),
            "patients": int(rows["patient_id"].nunique()),
            "synthetic": int((rows["source"] == "synthetic").sum()),
            "counts": {n: int(counts[n]) for n in names},
        }
    train_split = table.data.splits.train
    train = splits.get(train_split, {}).get("counts", {n: 0 for n in names})
    train_counts = [train[n] for n in names]
    thresholds = tuple(table.data.group_thresholds)
    groups = space.groups(train_counts, thresholds)
    nonzero = [c for c in train_counts if c > 0]
    ratio = (max(nonzero) / min(nonzero)) if nonzero else None
    return {
        "format": table.data.format,
        "modality": table.modality,
        "multi_label": space.multi_label,
        "classes": names,
        "train_split": train_split,
        "group_thresholds": list(thresholds),
        "groups": dict(zip(names, groups, strict=True)),
        "group_sizes": {g: groups.count(g) for g in ("head", "medium", "tail")},
        "imbalance_ratio": ratio,
        "empty_train_classes": [n for n, c in zip(names, train_counts, strict=True) if c == 0],
        "splits": splits,
    }


def render_stats(stats: dict, console=None) -> None:
    """Rich table: one row per class, one column per split, plus the group."""
    from rich.console import Console
    from rich.table import Table as RichTable

    if console is None:
        console = Console()
        if not console.is_terminal:  # pipes/logs: do not squeeze class names into 80 columns
            console = Console(width=160)
    splits = list(stats["splits"])
    t = RichTable(title=f"{stats['format']} ({'multi' if stats['multi_label'] else 'single'}-label, "
                        f"{stats['modality']})")
    t.add_column("class")
    for s in splits:
        t.add_column(s, justify="right")
    t.add_column("group" if stats['train_split'] == "train" else f"group (from {stats['train_split']})")
    for name in stats["classes"]:
        t.add_row(name, *[str(stats["splits"][s]["counts"][name]) for s in splits], stats["groups"][name])
    t.add_section()
    t.add_row("images", *[str(stats["splits"][s]["images"]) for s in splits], "")
    t.add_row("patients", *[str(stats["splits"][s]["patients"]) for s in splits], "")
    console.print(t)
    lo, hi = stats["group_thresholds"]
    ratio = stats["imbalance_ratio"]
    sizes = stats["group_sizes"]
    console.print(f"groups (tail < {lo} <= medium <= {hi} < head): head {sizes['head']}, "
                  f"medium {sizes['medium']}, tail {sizes['tail']}; imbalance ratio "
                  f"{'n/a' if ratio is None else f'{ratio:.1f}'}"
                  + (f"; classes with no training image: {stats['empty_train_classes']}"
                     if stats["empty_train_classes"] else ""), soft_wrap=True)
