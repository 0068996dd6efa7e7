"""Table 2 on MPIIGaze files a user holds: `masked-gatys gaze --train render --test .../Normalized
--purify none,purifier` end to end on .mat fixtures written here (2 people x 1 day, grey 36x60 eyes
with gaze vectors), with the segmenter's masks, the guessed layout and the caches."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from test_gaze_datasets import _mpii_fixture

from masked_gatys.cli import main
from masked_gatys.errors import GazeError
from masked_gatys.eyes import experiment as experiment_module
from masked_gatys.eyes.experiment import evaluate, quick_config

pytestmark = pytest.mark.usefixtures("one_thread")

PER_SIDE = 3  # eyes per side per day file: 2 people x 2 sides x 3 = 12 eyes


@pytest.fixture(scope="module")
def normalized(tmp_path_factory):
    """``MPIIGaze/Data/Normalized`` with ``p00/day01.mat`` and ``p01/day01.mat``."""
    root = tmp_path_factory.mktemp("mpii") / "MPIIGaze" / "Data" / "Normalized"
    for seed, person in enumerate(("p00", "p01")):
        _mpii_fixture(root / person / "day01.mat", PER_SIDE, seed, eyes=True)
    return root


def _config(out, normalized, **changes):
    settings = dict(estimators=("knn",), train="render", test=(str(normalized),), purify=("none", "purifier"),
                    train_n=40)
    return quick_config(str(out), **{**settings, **changes})


def _finite(errors):
    return all(math.isfinite(v["mean"]) and v["n"] > 0 for v in errors.values())


def test_table2_on_mpiigaze_files_with_the_segmenters_masks_and_a_rerun_from_the_caches(tmp_path, normalized,
                                                                                         monkeypatch):
    heard = []
    report = evaluate(_config(tmp_path, normalized), notify=heard.append)
    assert [c["name"] for c in report.columns] == ["Normalized", "Normalized+purifier"]
    raw, purified = report.columns
    assert raw["n"] == 4 * PER_SIDE and raw["masks"] == purified["masks"] == "segmenter"
    assert purified["n"] + purified["no_iris"] == raw["n"] and purified["failed"] == 0
    assert _finite(report.errors["knn"])
    assert report.errors["knn"]["Normalized+purifier"]["paired_vs_raw"]["n"] == purified["n"]
    # the rendered training eyes took MPIIGaze's layout, guessed from the test set and said once
    assert report.metadata["config"]["layout"] == "mpiigaze" and report.metadata["train_set"]["layout"] == "mpiigaze"
    assert sum("layout mpiigaze" in line for line in heard) == 1
    assert sum("masks from the segmenter" in line for line in heard) == 1 and heard == report.notices
    data = json.loads((tmp_path / "results.json").read_text())
    masks = data["metadata"]["masks"]["Normalized"]
    assert masks["from"] == "segmenter" and masks["segmenter"]["file"] == "segmenter.pt" and masks["n"] == 12
    assert (tmp_path / masks["cache"]).is_file()
    assert data["errors"]["knn"]["Normalized"]["n"] == 12
    # the test eyes were written for purify under file names, not MPIIGaze's ids with slashes
    written = next((tmp_path / "test").iterdir())
    assert (written / "p00_day01_right_0000.png").is_file() and (written / "p00_day01_right_0000_mask.png").is_file()

    # a rerun segments, renders and purifies nothing again
    outputs = sorted((tmp_path / "purified").rglob("*.png"))
    stamps = [p.stat().st_mtime_ns for p in outputs]

    def again(*a, **k):
        raise AssertionError("done again")

    monkeypatch.setattr(experiment_module, "segment", again)
    monkeypatch.setattr(experiment_module, "render_set", again)
    second = evaluate(_config(tmp_path, normalized))
    assert second.errors == report.errors
    assert [p.stat().st_mtime_ns for p in outputs] == stamps


def test_eyes_without_an_iris_are_left_out_of_the_columns_that_need_a_mask(tmp_path, normalized, monkeypatch):
    def fake_segment(images, **_):
        labels = torch.zeros(images.shape[0], *images.shape[-2:], dtype=torch.int64)
        labels[:, 12:24, 25:35] = 2
        labels[:, 16:20, 28:32] = 3
        labels[0] = 1  # the first eye: sclera and skin only, as a closed eye
        return labels

    monkeypatch.setattr(experiment_module, "segment", fake_segment)
    report = evaluate(_config(tmp_path, normalized, purify=("none", "purifier", "johnson")))
    cols = {c["name"]: c for c in report.columns}
    assert cols["Normalized+purifier"]["n"] == 11 and cols["Normalized+purifier"]["no_iris"] == 1
    assert cols["Normalized+johnson"]["n"] == 12 and cols["Normalized+johnson"]["no_iris"] == 0  # needs no mask
    assert report.metadata["masks"]["Normalized"]["no_iris"] == 1
    assert report.metadata["masks"]["Normalized"]["no_iris_ids"] == ["p00/day01/right/0000"]
    assert "1 with no iris" in report.notices[-1]
    assert "11 (0; 1 no iris, left out)" in experiment_module.format_table(report)


def test_cli_runs_the_issues_command_and_mask_none_refuses_methods_that_need_masks(tmp_path, normalized):
    out = tmp_path / "out"
    args = ["gaze", "--train", "render", "--layout", "mpiigaze", "--test", str(normalized),
            "--purify", "none,purifier", "--estimators", "knn", "--train-n", "40", "--test-n", "12", "-q",
            "-o", str(out)]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Normalized+purifier" in result.output
    assert result.output.count("notice: masks from the segmenter") == 1
    assert "guessed" not in result.output  # the layout was named
    data = json.loads((out / "results.json").read_text())
    assert [(c["name"], c["masks"]) for c in data["columns"]] == [("Normalized", "segmenter"),
                                                                  ("Normalized+purifier", "segmenter")]
    assert all(np.isfinite(v["mean"]) for v in data["errors"]["knn"].values())
    assert str(tmp_path) not in (out / "results.json").read_text()  # no paths of this machine

    refused = CliRunner().invoke(main, [*args[:-1], str(tmp_path / "none"), "--mask", "none"])
    assert refused.exit_code == 1 and len(refused.output.strip().splitlines()) == 1
    assert "needs masks" in refused.output and "--mask auto" in refused.output
    assert not (tmp_path / "none" / "data").exists()  # refused before rendering or training


def test_mask_none_keeps_methods_that_need_no_mask(tmp_path, normalized):
    report = evaluate(_config(tmp_path, normalized, purify=("none", "johnson"), mask="none"))
    assert [c["masks"] for c in report.columns] == [None, None]
    assert report.columns[1]["n"] == 12 and not (tmp_path / "masks").exists()
    with pytest.raises(GazeError, match="mask='sometimes'"):
        evaluate(_config(tmp_path, normalized, mask="sometimes"))
