"""A simple class statistic for checking that samples depend on their class: nearest class-centroid
agreement with the real training images.

Real images give one centroid per class (mean image of the class, minus the mean over classes);
a generated image conditioned on class c "agrees" when its own (mean-subtracted) image correlates best
with c's centroid. `finding_correlation` compares the generated class-mean difference image with the
real one per class (1 = the class's finding appears where it does in the real data)."""

from __future__ import annotations

import torch


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.float().flatten(1)


def class_centroids(real_by_class: dict[int, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    classes = sorted(real_by_class)
    means = torch.stack([_flat(real_by_class[c]).mean(0) for c in classes])
    grand = means.mean(0)
    return means - grand, grand, classes


def class_statistics(gen_by_class: dict[int, torch.Tensor], real_by_class: dict[int, torch.Tensor]) -> dict:
    """{'centroid_accuracy', 'chance', 'finding_correlation' (mean over classes), 'per_class': {...}}."""
    cents, grand, classes = class_centroids(real_by_class)
    cn = torch.nn.functional.normalize(cents, dim=1)
    gen_grand = torch.stack([_flat(gen_by_class[c]).mean(0) for c in classes]).mean(0)
    hits, total, per_class, corrs = 0, 0, {}, []
    for row, c in enumerate(classes):
        g = _flat(gen_by_class[c]) - gen_grand
        pred = (torch.nn.functional.normalize(g, dim=1) @ cn.T).argmax(1)
        acc = (pred == row).float().mean().item()
        diff = g.mean(0)
        corr = torch.nn.functional.cosine_similarity(diff, cents[row], dim=0).item()
        hits += int((pred == row).sum())
        total += g.shape[0]
        per_class[c] = {"centroid_accuracy": acc, "finding_correlation": corr}
        corrs.append(corr)
    return {"centroid_accuracy": hits / max(total, 1), "chance": 1.0 / len(classes),
            "finding_correlation": sum(corrs) / len(corrs), "per_class": per_class}


def real_images_by_class(recipe, role: str = "train", max_per_class: int = 64) -> dict[int, torch.Tensor]:
    """Model-space images of each class (multi-label: images that contain the class)."""
    from medlt.data.loaders import build_dataset

    ds = build_dataset(recipe, role)
    out: dict[int, list[torch.Tensor]] = {}
    for i in range(len(ds)):
        item = ds[i]
        y = torch.as_tensor(item["label"])
        classes = torch.nonzero(y > 0).flatten().tolist() if y.dim() else [int(y)]
        for c in classes:
            if len(out.setdefault(c, [])) < max_per_class:
                out[c].append(torch.as_tensor(item["image"]).float())
    return {c: torch.stack(v) for c, v in out.items()}


def generated_by_class(gen, classes: list[int], per_class: int, *, guidance_scale: float,
                       num_inference_steps: int, seed: int = 0) -> dict[int, torch.Tensor]:
    """`per_class` samples per class (multi-label: the one-hot vector of the class)."""
    k = gen.label_space.num_classes
    labels = torch.tensor(classes).repeat_interleave(per_class)
    if gen.label_space.multi_label:
        labels = torch.nn.functional.one_hot(labels, k).float()
    seeds = list(range(seed, seed + len(classes) * per_class))
    x = gen.generate(labels, seeds, guidance_scale=guidance_scale, num_inference_steps=num_inference_steps)
    return {c: x[i * per_class:(i + 1) * per_class] for i, c in enumerate(classes)}
