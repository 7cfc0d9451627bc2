"""Re-running `medlt classify` in a run folder continues that run: a changed learning rate is
refused listing the key; epoch-count changes are allowed and recorded in RUN/resume_history.yaml."""

import pytest
import torch
import yaml

from medlt.classify.train import fit_classifier
from medlt.errors import RecipeError
from medlt.utils.checkpoint import load_checkpoint


def test_rerun_with_other_lr_is_refused_and_epochs_are_recorded(tiny, tmp_path):
    make_data, tiny_recipe = tiny
    data = make_data([12, 6])
    run = tmp_path / "r"
    fit_classifier(tiny_recipe(tmp_path, epochs=1), data, run, show_progress=False)
    before = (run / "recipe.yaml").read_bytes()
    with pytest.raises(RecipeError) as e:
        fit_classifier(tiny_recipe(tmp_path, epochs=1, lr=1.0), data, run, show_progress=False)
    assert "\n" not in str(e.value) and "classifier.lr (0.003 -> 1.0)" in str(e.value)
    assert (run / "recipe.yaml").read_bytes() == before and not (run / "resume_history.yaml").exists()

    last = load_checkpoint(run / "checkpoints" / "last.pt")
    last["stage"] = "main"  # as if interrupted after epoch 1
    torch.save(last, run / "checkpoints" / "last.pt")
    fit_classifier(tiny_recipe(tmp_path, epochs=2), data, run, show_progress=False)
    assert yaml.safe_load((run / "recipe.yaml").read_text())["classifier"]["epochs"] == 2
    history = yaml.safe_load((run / "resume_history.yaml").read_text())
    assert history[-1]["resumed_at"] == {"stage": "main", "epoch": 1}
    assert history[-1]["changed"] == {"classifier.epochs": {"old": 1, "new": 2}}
