"""User prompts from the command line and json files, and the source that carries them to a
model: parsing, kind choice, and what a family reads (checked against the prompt sampler)."""

import json

import cv2
import numpy as np
import pytest

from mattekit.inference.prompted_images import PromptedImages
from mattekit.prompts.user import UserPrompt, parse_box, parse_point, read_prompt_file


def test_points_and_boxes_parse_with_labels_and_name_the_flag():
    assert parse_point("12,7.5") == (12.0, 7.5, 1)
    assert parse_point("3,4,0") == (3.0, 4.0, 0)
    assert parse_box("1,2,30,40") == (1.0, 2.0, 30.0, 40.0)
    for bad in ("3", "3,4,2", "a,b"):
        with pytest.raises(ValueError, match="--point"):
            parse_point(bad)
    with pytest.raises(ValueError, match="--box"):
        parse_box("1,2,3")


def test_auto_takes_the_first_kind_the_model_accepts():
    prompt = UserPrompt(points=((1, 2, 1),), box=(0, 0, 5, 5), origin="a.json")
    assert prompt.kinds == ("box", "points")
    assert prompt.kind_for(("points", "box")) == "box"
    assert prompt.kind_for(("points",)) == "points"
    assert prompt.kind_for(("points", "box"), "points") == "points"
    with pytest.raises(ValueError, match=r"a\.json: the prompt has box, points; the model needs"):
        prompt.kind_for(("text",))
    with pytest.raises(ValueError, match="needs mask"):
        prompt.kind_for(("mask", "box"), "mask")


def test_a_micromat_json_with_text_and_a_mask_reads(tmp_path):
    path = tmp_path / "cat.json"
    document = {"point": [[5, 6, 1], [0, 0, -1]], "bbox": [1, 2, 9, 8], "text": "the cat"}
    path.write_text(json.dumps({**document, "mask": "masks/cat.png"}))
    prompt = read_prompt_file(path)
    assert prompt.points == ((5.0, 6.0, 1),)  # the padding row is dropped
    assert prompt.box == (1.0, 2.0, 9.0, 8.0)
    assert prompt.text == "the cat" and prompt.mask == tmp_path / "masks" / "cat.png"
    assert prompt.origin == str(path)
    path.write_text(json.dumps({"points": [[1, 2, 1]]}))
    with pytest.raises(ValueError, match=r"cat\.json: unknown keys \['points'\]"):
        read_prompt_file(path)


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), np.full((20, 30, 3), 90, np.uint8))
    return path


def test_a_mask_prompt_gets_its_bounding_box_and_text_the_whole_image(photo, tmp_path):
    mask = np.zeros((20, 30), np.uint8)
    mask[4:9, 10:21] = 255
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    source = PromptedImages(
        [(photo, UserPrompt(mask=tmp_path / "mask.png")), (photo, UserPrompt(text="it"))]
    )
    from_mask, from_text = source[0], source[1]
    assert np.array_equal(from_mask.coarse_mask, mask > 0)
    assert from_mask.box.tolist() == [10, 4, 20, 8]
    assert from_text.text == "it" and from_text.box.tolist() == [0, 0, 29, 19]
    assert from_text.points is None and not from_text.alpha.any()


def test_prompts_are_checked_against_the_image(photo, tmp_path):
    clicks = PromptedImages([(photo, UserPrompt(points=((29.6, 5, 1), (3, 4, 0))))])[0]
    assert clicks.points.tolist() == [[29, 5, 1], [3, 4, 0]]  # on the last pixel: kept there
    outside = PromptedImages([(photo, UserPrompt(points=((3, 4, 1), (30, 5, 1))))])
    with pytest.raises(ValueError, match=r"command line: the click at \(30, 5\) lies outside"):
        outside[0]
    outside = PromptedImages([(photo, UserPrompt(box=(40, 1, 60, 9), origin="x.json"))])
    with pytest.raises(ValueError, match=r"x\.json: box .* lies outside the 30x20 image"):
        outside[0]
    cv2.imwrite(str(tmp_path / "small.png"), np.full((10, 10), 255, np.uint8))
    with pytest.raises(ValueError, match=r"small\.png"):
        PromptedImages([(photo, UserPrompt(mask=tmp_path / "small.png"))])[0]
    cv2.imwrite(str(tmp_path / "empty.png"), np.zeros((20, 30), np.uint8))
    with pytest.raises(ValueError, match=r"empty\.png: the mask prompt is empty"):
        PromptedImages([(photo, UserPrompt(mask=tmp_path / "empty.png"))])[0]
