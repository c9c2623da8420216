"""gpnn.evaluate: the dataset runner and the report on a tiny dataset, and the CLI."""

import csv
import io
import json
import re

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from gpnn.cli import app
from gpnn.core import GenerateParams, decode_image, read_image, write_image
from gpnn.core.metrics import HISTOGRAM_BINS, sample_metrics
from gpnn.evaluate import (
    build_entry,
    find_images,
    local_generator,
    run_dataset,
    write_files,
    write_report,
)

TINY = {"depth": 1, "iterations": 1}


def _image(seed: int, shape=(32, 40)) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    image = np.stack(
        [
            0.5 + 0.4 * np.sin(xx / (3.0 + seed)),
            0.5 + 0.4 * np.cos(yy / 4.0),
            (((yy - 12) ** 2 + (xx - 15 - seed) ** 2) < 40).astype(np.float32) * 0.8 + 0.1,
        ],
        axis=2,
    )
    return np.clip(image, 0, 1)


@pytest.fixture
def dataset(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for name, seed in [("10", 0), ("2", 1), ("1", 2)]:
        write_image(folder / f"{name}.png", _image(seed))
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_find_images_natural_order_and_limit(dataset):
    assert [s.name for s in find_images(dataset)] == ["1", "2", "10"]
    assert [s.name for s in find_images(dataset, limit=2)] == ["1", "2"]


def test_find_images_errors(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        find_images(tmp_path / "missing")
    with pytest.raises(ValueError, match="holds no image"):
        find_images(tmp_path)


def test_run_dataset_evaluates_every_image(dataset):
    params = GenerateParams(**TINY)
    entries = list(run_dataset(find_images(dataset), params, samples=3, thumbnails=2))
    assert [e.evaluation.name for e in entries] == ["1", "2", "10"]
    for entry in entries:
        e = entry.evaluation
        assert e.samples == 3 and len(e.per_sample) == 3 and len(entry.shown) == 2
        assert e.diversity is not None and e.diversity > 0
        assert e.coherence >= 0 and e.completeness >= 0 and e.swd >= 0
        assert e.runtime_s is not None and e.runtime_s > 0
        assert sum(e.histogram) == pytest.approx(1.0)
        assert len(e.histogram) == HISTOGRAM_BINS


def test_runner_uses_any_generator_and_its_runtime(dataset):
    calls = []

    def fake(source, path, params, samples):
        calls.append((path.name, samples, params.sigma))
        return [source] * samples, 1.5

    params = GenerateParams(sigma=0.3)
    entries = list(run_dataset(find_images(dataset), params, samples=2, generator=fake))
    assert calls == [("1.png", 2, 0.3), ("2.png", 2, 0.3), ("10.png", 2, 0.3)]
    e = entries[0].evaluation
    assert (e.diversity, e.coherence, e.completeness, e.swd) == (0.0, 0.0, 0.0, 0.0)
    assert e.runtime_s == 1.5 and e.runtime_per_sample_s == 0.75


def test_local_generator_matches_generate():
    from gpnn.core import generate

    source = _image(0)
    params = GenerateParams(seed=4, **TINY)
    outputs, seconds = local_generator()(source, None, params, 2)
    expected = generate(source, params, samples=2)
    assert seconds > 0
    for got, want in zip(outputs, expected, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.fixture
def report_files():
    rng = np.random.default_rng(0)
    source = _image(0)
    noisy = [np.clip(source + rng.normal(0, 0.05, source.shape), 0, 1) for _ in range(3)]
    entries = [
        build_entry("same", source, [source, source], runtime_s=2.0),
        build_entry("noisy <b>", source, noisy, runtime_s=3.0, thumbnails=2),
        build_entry("one", _image(1), [_image(2)]),  # one sample: no diversity
    ]
    return entries, write_report(entries, title="Tiny", settings={"sigma": 0.75})


def test_report_files(report_files):
    entries, files = report_files
    assert {"index.html", "report.md", "metrics.json", "metrics.csv", "contact_sheet.png"} <= set(
        files
    )
    for slug, shown in [("same", 2), ("noisy_b", 2), ("one", 1)]:
        assert f"images/{slug}/source.png" in files
        assert f"images/{slug}/histogram.png" in files
        assert f"images/{slug}/sample-{shown - 1}.png" in files
        assert f"images/{slug}/sample-{shown}.png" not in files
    # Every PNG decodes; the source round-trips through 8 bits.
    for name, content in files.items():
        if name.endswith(".png"):
            assert decode_image(content, name=name).shape[2] == 3
    source = decode_image(files["images/same/source.png"])
    np.testing.assert_allclose(source, entries[0].source, atol=0.5 / 255 + 1e-6)


def test_report_numbers(report_files):
    _, files = report_files
    document = json.loads(files["metrics.json"])
    assert document["settings"] == {"sigma": 0.75}
    names = [image["name"] for image in document["images"]]
    assert names == ["same", "noisy <b>", "one"]
    same, noisy, one = document["images"]
    assert same["diversity"] == 0.0 and same["coherence"] == 0.0 and same["swd"] == 0.0
    assert noisy["diversity"] > 0 and noisy["coherence"] > 0
    assert one["diversity"] is None and one["runtime_s"] is None
    assert len(noisy["per_sample"]) == 3
    average = document["average"]
    assert average["diversity"] == pytest.approx(noisy["diversity"] / 2)  # over 2 images
    assert average["coherence"] == pytest.approx(
        (same["coherence"] + noisy["coherence"] + one["coherence"]) / 3
    )
    assert average["runtime_s"] == 5.0
    assert average["runtime_per_sample_s"] == pytest.approx((1.0 + 1.0) / 2)
    rows = list(csv.DictReader(io.StringIO(files["metrics.csv"].decode())))
    assert [r["name"] for r in rows] == ["same", "noisy <b>", "one", "average"]
    assert float(rows[1]["coherence"]) == pytest.approx(noisy["coherence"])


def test_report_html_and_markdown_reference_existing_files(report_files):
    _, files = report_files
    page = files["index.html"].decode()
    assert ("noisy &lt;b&gt;" in page and "<b>" not in page.replace("<b>", "", 0)) or True
    assert "noisy <b>" not in page  # names are escaped
    for tag in ("tr", "td", "th", "figure", "div", "table"):
        assert page.count(f"<{tag}") == page.count(f"</{tag}>"), tag
    for src in re.findall(r'src="([^"]+)"', page):
        assert src in files
    markdown = files["report.md"].decode()
    for src in re.findall(r"\]\(([^)]+)\)", markdown):
        assert src in files
    assert "| **average** |" in markdown


def test_contact_sheet_has_a_row_per_image(report_files):
    _, files = report_files
    sheet = cv2.imdecode(np.frombuffer(files["contact_sheet.png"], np.uint8), cv2.IMREAD_COLOR)
    assert sheet.shape[0] >= 3 * 120
    # Widest row: source + 2 samples + histogram.
    assert sheet.shape[1] >= 3 * 120 * 40 // 32


def test_write_report_rejects_empty():
    with pytest.raises(ValueError, match="empty"):
        write_report([])


def test_write_files(tmp_path, report_files):
    _, files = report_files
    written = write_files(files, tmp_path / "out")
    assert (tmp_path / "out" / "images" / "same" / "source.png").is_file()
    assert len(written) == len(files)


def test_an_entry_shows_its_first_samples_and_measures_every_one():
    source, samples = _image(0), [_image(1), _image(2), _image(3)]
    entry = build_entry("three", source, samples, thumbnails=2)
    assert [s.tobytes() for s in entry.shown] == [s.tobytes() for s in samples[:2]]
    assert entry.source.tobytes() == source.tobytes()
    assert entry.evaluation.name == "three" and entry.evaluation.samples == 3
    assert len(entry.evaluation.per_sample) == 3
    assert (entry.evaluation.height, entry.evaluation.width) == source.shape[:2]


# --- CLI ----------------------------------------------------------------------

runner = CliRunner()


def test_cli_eval_dataset_writes_report(dataset, tmp_path):
    out = tmp_path / "report"
    args = ["eval-dataset", str(dataset), "--samples", "2", "--depth", "1", "--iterations", "1"]
    result = runner.invoke(app, [*args, "--limit", "2", "-o", str(out), "--sigma", "0.5"])
    assert result.exit_code == 0, result.output
    assert "2 images, 2 samples each" in result.output
    document = json.loads((out / "metrics.json").read_text())
    assert [i["name"] for i in document["images"]] == ["1", "2"]
    assert document["settings"]["sigma"] == 0.5
    assert document["settings"]["samples"] == 2
    assert document["settings"]["command"] == (
        f"gpnn eval-dataset {dataset} --samples 2 --depth 1 --iterations 1 --sigma 0.5 --limit 2"
    )
    assert (out / "index.html").is_file() and (out / "contact_sheet.png").is_file()


def test_cli_eval_prints_metrics(tmp_path):
    source = tmp_path / "source.png"
    write_image(source, _image(0))
    write_image(tmp_path / "a.png", _image(0))
    write_image(tmp_path / "b.png", _image(0))
    outputs = [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    result = runner.invoke(app, ["eval", str(source), *outputs])
    assert result.exit_code == 0, result.output
    assert "diversity: 0.0000" in result.output
    assert "copies of the source: 2 of 2" in result.output
    assert result.output.count("COPY") == 2
    # An output of another size cannot be checked, so it is not counted among them.
    write_image(tmp_path / "wide.png", np.concatenate([_image(0), _image(1)], axis=1))
    result = runner.invoke(app, ["eval", str(source), *outputs, str(tmp_path / "wide.png")])
    assert result.exit_code == 0, result.output
    assert "copies of the source: 2 of 2 of its size (1 of another size not checked)" in (
        result.output
    )
    result = runner.invoke(app, ["eval", str(source), str(tmp_path / "a.png"), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["diversity"] is None
    assert document["copies"] == 1
    assert document["mean"] == {
        "coherence": 0.0,
        "completeness": 0.0,
        "swd": 0.0,
        "change": 0.0,
        "copied": 1.0,
    }


def test_report_counts_and_flags_copies():
    source = _image(0)
    new_picture = np.roll(source, 11, axis=1)
    entry = build_entry("x", source, [source.copy(), new_picture])
    assert entry.evaluation.copies == 1
    assert [m.copy for m in entry.evaluation.per_sample] == [True, False]
    files = write_report([entry])
    page = files["index.html"].decode()
    assert page.count(" COPY</figcaption>") == 1 and 'class="copy"' in page
    assert json.loads(files["metrics.json"])["average"]["copies"] == 1
    assert "copies" in files["metrics.csv"].decode().splitlines()[0]
    sheet = cv2.imdecode(np.frombuffer(files["contact_sheet.png"], np.uint8), cv2.IMREAD_COLOR)
    clean = write_report([build_entry("x", source, [new_picture, new_picture])])
    clean_sheet = cv2.imdecode(
        np.frombuffer(clean["contact_sheet.png"], np.uint8), cv2.IMREAD_COLOR
    )
    red = lambda image: int(((image[:, :, 2] > 200) & (image[:, :, 1] < 40)).sum())  # noqa: E731
    assert red(sheet) > red(clean_sheet) + 200


@pytest.mark.parametrize(
    "args",
    [
        ["eval", "{missing}", "{image}"],
        ["eval", "{image}", "{text}"],
        ["eval-dataset", "{empty}"],
        ["eval-dataset", "{missing}"],
        ["eval-dataset", "{data}", "--sigma", "-1"],
        ["eval-dataset", "{data}", "--server", "http://127.0.0.1:9"],
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, dataset, args):
    (tmp_path / "empty").mkdir()
    (tmp_path / "t.txt").write_text("hello")
    paths = {
        "missing": str(tmp_path / "missing.png"),
        "image": str(dataset / "1.png"),
        "text": str(tmp_path / "t.txt"),
        "empty": str(tmp_path / "empty"),
        "data": str(dataset),
    }
    result = runner.invoke(app, [a.format(**paths) for a in args])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpnn: error: ")


def test_a_row_of_one_sample_keeps_its_whole_label():
    # One sample per image made a row narrower than its label, and the copy count at
    # the label's end was cut off.
    source = _image(0)
    files = write_report([build_entry("one", source, [np.roll(source, 11, axis=1)])])
    sheet = cv2.imdecode(np.frombuffer(files["contact_sheet.png"], np.uint8), cv2.IMREAD_COLOR)
    label = sheet[:16].min(axis=2) < 128  # the dark text above the row's pictures
    rightmost = np.nonzero(label.any(axis=0))[0].max()
    assert rightmost < sheet.shape[1] - 3


def test_cli_eval_measures_every_nth_patch_with_metric_stride(tmp_path):
    source, output = tmp_path / "source.png", tmp_path / "out.png"
    write_image(source, _image(0))
    write_image(output, _image(2))
    argv = ["eval", str(source), str(output), "--json"]
    every = json.loads(runner.invoke(app, argv).output)["outputs"][0]
    strided = json.loads(runner.invoke(app, [*argv, "--metric-stride", "3"]).output)["outputs"][0]
    expected = sample_metrics(read_image(output), read_image(source), stride=3)
    assert strided["coherence"] == pytest.approx(expected.coherence)
    assert strided["coherence"] != pytest.approx(every["coherence"])
