"""Bad input gets one clear ValueError from the library (and exit 2 from the CLI)."""

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from gpnn.cli import app
from gpnn.core import (
    collage,
    decode_image,
    edit,
    generate,
    inpaint,
    params_for,
    read_image,
    retarget,
    run_task,
)


def encode(array: np.ndarray, ext: str) -> bytes:
    ok, buffer = cv2.imencode(ext, array)
    assert ok
    return buffer.tobytes()


def with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """`jpeg` with an EXIF APP1 segment holding only the Orientation tag (0x0112)."""
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + b"\x00\x01"  # big-endian header, 1 entry
    tiff += b"\x01\x12\x00\x03\x00\x00\x00\x01" + orientation.to_bytes(2, "big") + b"\x00\x00"
    tiff += b"\x00\x00\x00\x00"  # no next IFD
    payload = b"Exif\x00\x00" + tiff
    segment = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    return jpeg[:2] + segment + jpeg[2:]


def test_a_jpeg_tagged_rotate_90_is_read_upright(tmp_path):
    # A phone held upright stores a landscape frame tagged "rotate 90 clockwise" (6).
    frame = np.zeros((20, 40, 3), np.uint8)
    frame[:, :10] = 255  # white on the left of the stored frame: the top once upright
    tagged = with_exif_orientation(encode(frame, ".jpg"), 6)
    image = decode_image(tagged)
    assert image.shape == (40, 20, 3)
    assert image[:10].mean() > 0.9 and image[-10:].mean() < 0.1
    (tmp_path / "phone.jpg").write_bytes(tagged)
    assert read_image(tmp_path / "phone.jpg").shape == (40, 20, 3)
    assert decode_image(encode(frame, ".jpg")).shape == (20, 40, 3)  # untagged: as stored


def test_decode_supports_grey_16bit_rgba_and_webp():
    grey = np.full((5, 6), 128, np.uint8)
    assert decode_image(encode(grey, ".png")).shape == (5, 6, 3)
    deep = np.full((5, 6, 3), 65535, np.uint16)
    np.testing.assert_allclose(decode_image(encode(deep, ".png")), 1.0)
    rgba = np.zeros((5, 6, 4), np.uint8)  # fully transparent black: composited on white
    np.testing.assert_allclose(decode_image(encode(rgba, ".png")), 1.0)
    bgr = np.zeros((5, 6, 3), np.uint8)
    bgr[:, :, 2] = 255  # red in OpenCV's BGR order
    rgb = decode_image(encode(bgr, ".webp"))
    assert rgb[:, :, 0].mean() > 0.9 and rgb[:, :, 2].mean() < 0.1


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"", "is empty"), (b"not an image at all", "not a readable image")],
)
def test_decode_rejects_non_images(data, message):
    with pytest.raises(ValueError, match=message):
        decode_image(data)


def test_read_image_of_a_missing_file(tmp_path):
    with pytest.raises(ValueError, match="is not a file"):
        read_image(tmp_path / "nothing.png")


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"patch_size": 4}, "patch_size"),
        ({"patch_size": 99}, "patch_size"),
        ({"alpha": 0}, "alpha"),
        ({"ratio": 1.5}, "ratio"),
        ({"iterations": 0}, "iterations"),
        ({"sigma": -1}, "sigma"),
        ({"seed": -3}, "seed"),
        ({"mode": "quick"}, "mode"),
        ({"colour": 1}, "colour"),
    ],
)
def test_parameters_out_of_range_name_the_field(values, field):
    with pytest.raises(ValueError, match=f"`{field}`"):
        params_for("generate", **values)


def test_unknown_task():
    with pytest.raises(ValueError, match="unknown task `paint`"):
        params_for("paint")


def test_image_too_small_for_the_pyramid(scene):
    with pytest.raises(ValueError, match="smaller than one 7x7 patch"):
        generate(scene, depth=8)
    with pytest.raises(ValueError, match="target size"):
        retarget(scene, height=8, width=40, depth=2)


def test_wrong_image_arrays(scene):
    with pytest.raises(ValueError, match="must be an \\(H, W, 3\\)"):
        generate(scene[:, :, :2])
    with pytest.raises(ValueError, match="must lie in \\[0, 1\\]"):
        generate(scene * 2)
    with pytest.raises(ValueError, match="same size"):
        edit(scene, scene[:20])


def test_inpaint_mask_problems(scene):
    # Sizes read width x height, as image tools write them (the scene is 52 wide).
    with pytest.raises(ValueError, match="`mask` is 4x3 but `source` is 52x40"):
        inpaint(scene, np.zeros((3, 4), bool))
    with pytest.raises(ValueError, match="marks no pixel"):
        inpaint(scene, np.zeros(scene.shape[:2], bool))
    with pytest.raises(ValueError, match="whole image"):
        inpaint(scene, np.ones(scene.shape[:2], bool))
    with pytest.raises(ValueError, match="needs a `mask` or"):
        inpaint(scene)
    with pytest.raises(ValueError, match="a `mask` or a `color`, not both"):
        inpaint(scene, np.ones(scene.shape[:2], bool), color=(0, 255, 0))


def test_a_collage_of_one_image_is_refused(scene):
    with pytest.raises(ValueError, match="at least two images"):
        collage([scene])


def test_run_task_checks_inputs(scene):
    params = params_for("analogy")
    with pytest.raises(ValueError, match="needs the input `structure`"):
        run_task(params, {"source": scene})
    with pytest.raises(ValueError, match="takes no input `mask`"):
        run_task(params, {"source": scene, "structure": scene, "mask": None})


@pytest.fixture
def image_file(tmp_path, scene):
    path = tmp_path / "scene.png"
    path.write_bytes(encode((scene * 255).astype(np.uint8), ".png"))
    return path


runner = CliRunner()


def test_cli_generate_writes_seeded_samples(tmp_path, image_file):
    args = ["generate", str(image_file), "--depth", "1", "--iterations", "1", "--patch-size", "5"]
    result = runner.invoke(app, [*args, "--samples", "2", "--seed", "7", "-o", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    written = sorted((tmp_path / "a").iterdir())
    assert [p.name for p in written] == ["scene-generate-7.png", "scene-generate-8.png"]
    again = runner.invoke(app, [*args, "--seed", "8", "-o", str(tmp_path / "b")])
    assert again.exit_code == 0
    assert (tmp_path / "b" / "scene-generate-8.png").read_bytes() == written[1].read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["generate", "{missing}"], "is not a file"),
        (["generate", "{text}"], "not a readable image"),
        (["generate", "{image}", "--patch-size", "6"], "`--patch-size`: must be odd"),
        (["generate", "{image}", "--depth", "9"], "smaller than one"),
        (["retarget", "{image}"], "give `--height`, `--width` or both"),
        (["inpaint", "{image}", "--mask", "{small_mask}"], "same size"),
        (["inpaint", "{image}", "--mask", "{image}", "--color", "0", "255", "0"], "not both"),
        (["collage", "{image}"], "at least two images"),
        (["edit", "{image}", "{text}"], "not a readable image"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, image_file, args, message):
    text = tmp_path / "notes.png"
    text.write_text("hello")
    small_mask = tmp_path / "mask.png"
    small_mask.write_bytes(encode(np.full((4, 4), 255, np.uint8), ".png"))
    paths = {"missing": tmp_path / "nope.png", "text": text, "image": image_file}
    paths["small_mask"] = small_mask
    argv = [a.format(**paths) for a in args] + ["-o", str(tmp_path / "out")]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpnn: error:") and message in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["retarget", "{image}"], "gpnn: error: give `--height`, `--width` or both"),
        (["inpaint", "{image}", "--mask", "{empty_mask}"], "the `--mask` (or `--color`) marks"),
    ],
)
def test_cli_errors_name_the_options_as_typed(tmp_path, image_file, scene, args, line):
    empty_mask = tmp_path / "empty.png"
    empty_mask.write_bytes(encode(np.zeros(scene.shape[:2], np.uint8), ".png"))
    argv = [a.format(image=image_file, empty_mask=empty_mask) for a in args]
    result = runner.invoke(app, [*argv, "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and line in result.output, result.output


@pytest.mark.parametrize(
    ("task", "inputs", "values"),
    [
        ("retarget", ("source",), {"width": 40}),
        ("analogy", ("source", "structure"), {}),
        ("inpaint", ("source",), {"color": (0, 255, 0)}),
        ("collage", ("sources",), {"noise_rounds": 0}),
        ("edit", ("source", "edited"), {}),
        ("generate", ("source",), {"sigma": 0.0}),
    ],
)
def test_several_samples_of_a_run_without_noise_are_refused_before_work(
    scene, task, inputs, values
):
    images = {name: [scene, scene] if name == "sources" else scene for name in inputs}
    params = params_for(task, **values)
    with pytest.raises(ValueError, match="would be the same image"):
        run_task(params, images, samples=2)


def test_an_edit_with_noise_gives_a_different_sample_per_seed(scene):
    first, second = edit(scene, scene[::-1].copy(), sigma=0.3, samples=2, depth=2)
    assert not np.array_equal(first, second)
