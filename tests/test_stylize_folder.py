"""``train.stylize_folder`` (``stylize FOLDER --model``): the folder problems issue 10 found."""

from __future__ import annotations

import pytest
import torch

from masked_gatys import nets
from masked_gatys.errors import OutputError
from masked_gatys.image import save_image
from masked_gatys.eyes.training_data import list_images as _list_images
from masked_gatys.train import LoadedModel, stylize_folder

pytestmark = pytest.mark.usefixtures("one_thread")


def _folder(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("0000.png", "0000_mask.png", "0000_labels.png", ".0000.png.ab12.png"):
        save_image(torch.rand(1, 3, 12, 16), src / name)
    return src


def test_companions_and_hidden_files_are_not_images(tmp_path):
    assert [p.name for p in _list_images(_folder(tmp_path))] == ["0000.png"]


def test_collisions_and_outputs_over_inputs_are_refused_before_any_work(tmp_path):
    src = _folder(tmp_path)
    model = LoadedModel(nets.build("johnson", width=2, blocks=1), {})
    save_image(torch.rand(1, 3, 12, 16), src / "0000.jpg")
    with pytest.raises(OutputError, match="would both be written"):
        stylize_folder(model, src, tmp_path / "out")
    (src / "0000.jpg").unlink()
    masks = tmp_path / "masks"  # -o the mask folder: the output 0000.png would replace the mask
    masks.mkdir()
    save_image(torch.ones(1, 1, 12, 16), masks / "0000.png")
    with pytest.raises(OutputError, match="the output folder is the mask folder"):
        stylize_folder(model, src, masks, mask_dir=masks)
    assert len(stylize_folder(model, src, tmp_path / "out")) == 1
