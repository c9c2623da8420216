"""Evaluation report of a set of generated images: numbers and pictures.

Two calls make a report from any source of samples (the local runner, the CLI,
a service batch)::

    entries = [build_entry(name, source, samples, runtime_s=seconds) for ...]
    files = write_report(entries, settings=params.model_dump(mode="json"))
    # files: {"index.html": b"...", "report.md": b"...", "metrics.json": ..., ...}

`write_report` returns file names (relative, "/"-separated) mapped to their
bytes, so the caller decides where they go (a folder, an object store).
Pictures are PNGs drawn with OpenCV; no plotting library is needed.
"""

from __future__ import annotations

import csv
import html
import io
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from gpnn.core.imageio import describe_size, encode_png
from gpnn.core.metrics import (
    COPY_MAX_CHANGE,
    COPY_MIN_SHARE,
    HISTOGRAM_BINS,
    HISTOGRAM_EDGES,
    PATCH_SIZE,
    SampleMetrics,
    diversity,
    nearest_patches,
    nn_histogram,
    sample_metrics,
)
from gpnn.core.pyramid import resize

logger = logging.getLogger(__name__)

# Samples shown per image (thumbnails and contact sheet); metrics use them all.
THUMBNAILS = 8
# Height in pixels of the pictures in the contact sheet.
SHEET_HEIGHT = 120
# Histogram plot size in pixels.
PLOT_SIZE = (180, 300)

METRIC_COLUMNS = ("diversity", "coherence", "completeness", "swd", "change", "copied")


@dataclass(frozen=True)
class ImageEvaluation:
    """The metrics of the samples of one source image.

    `coherence`, `completeness`, `swd`, `change` and `copied` are means over the
    samples (see `gpnn.core.metrics`; the last two None for samples of another
    size than the source), `copies` the number of samples that are copies of
    the source (`gpnn.core.metrics.is_copy`); `diversity` is None with fewer than two samples or
    samples of another size than the source; `histogram` holds the fractions
    of all samples' patches in each nearest-neighbour distance bin
    (the bins of `gpnn.core.metrics.HISTOGRAM_EDGES`). `runtime_s` is the
    generation time of all samples (None when unknown).
    """

    name: str
    height: int
    width: int
    samples: int
    diversity: float | None
    coherence: float
    completeness: float
    swd: float
    change: float | None
    copied: float | None
    copies: int
    per_sample: tuple[SampleMetrics, ...]
    histogram: tuple[float, ...]
    runtime_s: float | None = None
    eval_s: float = 0.0

    @property
    def runtime_per_sample_s(self) -> float | None:
        return None if self.runtime_s is None else self.runtime_s / self.samples

    def summary(self) -> dict[str, Any]:
        """The row of this image in the report's tables (JSON-ready)."""
        return {
            "name": self.name,
            "size": describe_size((self.height, self.width)),
            "samples": self.samples,
            "diversity": self.diversity,
            "coherence": self.coherence,
            "completeness": self.completeness,
            "swd": self.swd,
            "change": self.change,
            "copied": self.copied,
            "copies": self.copies,
            "runtime_s": self.runtime_s,
            "runtime_per_sample_s": self.runtime_per_sample_s,
        }


@dataclass
class ReportEntry:
    """One image of a report: its evaluation and the pictures to show."""

    evaluation: ImageEvaluation
    source: np.ndarray
    shown: list[np.ndarray] = field(default_factory=list)


def evaluate_image(
    name: str,
    source: np.ndarray,
    samples: Sequence[np.ndarray],
    *,
    runtime_s: float | None = None,
    patch_size: int = PATCH_SIZE,
    stride: int = 1,
) -> ImageEvaluation:
    """Every metric of `samples` (generated from `source`), see `ImageEvaluation`.

    `stride` > 1 measures coherence, completeness and the histogram on every
    `stride`-th patch row and column (about 1/stride^2 of the nearest-patch
    searches' cost; see `gpnn.core.metrics.nearest_patch_distances`).
    """
    if len(samples) == 0:
        raise ValueError(f"`{name}` has no samples to evaluate")
    start = time.perf_counter()
    per_sample = []
    counts = np.zeros(HISTOGRAM_BINS)
    for sample in samples:
        nearest = nearest_patches(sample, source, patch_size=patch_size, stride=stride)
        per_sample.append(
            sample_metrics(sample, source, patch_size=patch_size, stride=stride, nearest=nearest)
        )
        counts += nn_histogram(nearest[0])[0] * nearest[0].size
    same_size = all(s.shape == source.shape for s in samples)
    value = diversity(samples, source) if len(samples) >= 2 and same_size else None
    return ImageEvaluation(
        name=name,
        height=int(source.shape[0]),
        width=int(source.shape[1]),
        samples=len(samples),
        diversity=value,
        coherence=float(np.mean([m.coherence for m in per_sample])),
        completeness=float(np.mean([m.completeness for m in per_sample])),
        swd=float(np.mean([m.swd for m in per_sample])),
        change=_mean_or_none([m.change for m in per_sample]),
        copied=_mean_or_none([m.copied for m in per_sample]),
        copies=sum(m.copy for m in per_sample),
        per_sample=tuple(per_sample),
        histogram=tuple(float(c) for c in counts / counts.sum()),
        runtime_s=runtime_s,
        eval_s=time.perf_counter() - start,
    )


def _mean_or_none(values: Sequence[float | None]) -> float | None:
    return None if any(v is None for v in values) else float(np.mean(values))


def build_entry(
    name: str,
    source: np.ndarray,
    samples: Sequence[np.ndarray],
    *,
    runtime_s: float | None = None,
    thumbnails: int = THUMBNAILS,
    patch_size: int = PATCH_SIZE,
    stride: int = 1,
) -> ReportEntry:
    """Evaluate `samples` of `source` and keep the first `thumbnails` to show.

    Images are float (H, W, 3) RGB in [0, 1] (or uint8). `name` labels the
    image in the report (its file names are derived from it).
    """
    source = _float_image(source)
    samples = [_float_image(s) for s in samples]
    evaluation = evaluate_image(
        name, source, samples, runtime_s=runtime_s, patch_size=patch_size, stride=stride
    )
    return ReportEntry(evaluation, source, list(samples[:thumbnails]))


def averages(evaluations: Sequence[ImageEvaluation]) -> dict[str, Any]:
    """The mean over images of every metric (diversity over the images that have one)."""
    row: dict[str, Any] = {"name": "average", "images": len(evaluations)}
    for key in METRIC_COLUMNS:
        values = [getattr(e, key) for e in evaluations if getattr(e, key) is not None]
        row[key] = float(np.mean(values)) if values else None
    row["samples"] = int(sum(e.samples for e in evaluations))
    row["copies"] = int(sum(e.copies for e in evaluations))
    runtimes = [e.runtime_s for e in evaluations if e.runtime_s is not None]
    row["runtime_s"] = float(np.sum(runtimes)) if runtimes else None
    per_sample = [e.runtime_per_sample_s for e in evaluations if e.runtime_s is not None]
    row["runtime_per_sample_s"] = float(np.mean(per_sample)) if per_sample else None
    return row


def write_report(
    entries: Sequence[ReportEntry],
    *,
    title: str = "GPNN evaluation",
    settings: Mapping[str, Any] | None = None,
) -> dict[str, bytes]:
    """Render the report of `entries` as files.

    Parameters
    ----------
    entries : sequence of `ReportEntry` (see `build_entry`), in display order
    title : str, the heading of the pages
    settings : mapping, shown in the report and stored in metrics.json
        (e.g. the generation parameters, the command line)

    Returns
    -------
    dict[str, bytes]
        File name (relative path, "/"-separated) to content:

        - ``index.html``: tables and, per image, the source then its samples
          side by side, with its nearest-neighbour histogram;
        - ``report.md``: the same as Markdown;
        - ``metrics.json``: settings, average, per-image and per-sample numbers;
        - ``metrics.csv``: one row per image, then the average;
        - ``contact_sheet.png``: every image's row (source, samples,
          histogram) in one picture;
        - ``images/<name>/source.png``, ``images/<name>/sample-<i>.png``,
          ``images/<name>/histogram.png``, and ``histogram.png`` (all images).
    """
    if len(entries) == 0:
        raise ValueError("`entries` is empty: nothing to report")
    settings = dict(settings or {})
    evaluations = [entry.evaluation for entry in entries]
    slugs = _unique_slugs([e.name for e in evaluations])
    files: dict[str, bytes] = {}
    for entry, slug in zip(entries, slugs, strict=True):
        folder = f"images/{slug}"
        files[f"{folder}/source.png"] = encode_png(entry.source)
        for i, sample in enumerate(entry.shown):
            files[f"{folder}/sample-{i}.png"] = encode_png(sample)
        files[f"{folder}/histogram.png"] = _png_bgr(
            _histogram_plot(entry.evaluation.histogram, entry.evaluation.name)
        )
    overall = np.average(
        [e.histogram for e in evaluations], axis=0, weights=[e.samples for e in evaluations]
    )
    files["histogram.png"] = _png_bgr(_histogram_plot(overall, "all images"))
    files["contact_sheet.png"] = _png_bgr(_contact_sheet(entries))
    average = averages(evaluations)
    files["metrics.json"] = _json(title, settings, evaluations, average)
    files["metrics.csv"] = _csv(evaluations, average)
    files["index.html"] = _html(title, settings, entries, slugs, average).encode()
    files["report.md"] = _markdown(title, settings, entries, slugs, average).encode()
    return files


# --- tables -----------------------------------------------------------------

HEADERS = {
    "name": "image",
    "size": "size",
    "samples": "samples",
    "diversity": "diversity",
    "coherence": "coherence",
    "completeness": "completeness",
    "swd": "patch SWD",
    "change": "change",
    "copied": "copied",
    "copies": "copies",
    "runtime_per_sample_s": "s / sample",
}

LEGEND = (
    "diversity: mean over pixels of the std of the grey samples / std of the grey source "
    "(SinGAN); coherence: mean MSE of output patches to their nearest source patch; "
    "completeness: mean MSE of source patches to their nearest output patch "
    f"({PATCH_SIZE}x{PATCH_SIZE} patches, values in [0, 1], lower is better); patch SWD: "
    "sliced Wasserstein-1 distance between the 7x7 patch sets, mean over up to 4 pyramid "
    "levels (ratio 0.5), 128 fixed-seed projections (lower is better). A copy of the "
    "source scores perfect on all three, so read them beside change: mean |grey sample - "
    "grey source| / std of the grey source (0 for a copy), copied: share of the sample's "
    "patches whose nearest source patch is the one at their own place (1 for a copy), and "
    f"copies: samples with change < {COPY_MAX_CHANGE} or copied >= {COPY_MIN_SHARE}, "
    "framed in red in the pictures; s / sample: "
    "generation time per sample. Histogram: nearest-source-patch MSE of all output patches, "
    "a first bin for copies (MSE < 1e-7), then 6 log-spaced bins per decade up to 0.1, the "
    "last bin holding larger distances; the copies bar is drawn in red, clipped to the "
    "height of the tallest other bar, and its share is printed."
)


def format_value(key: str, value: Any) -> str:
    """A metric as the report prints it (n/a for None)."""
    if value is None:
        return "n/a"
    if key in ("coherence", "completeness"):
        return f"{value:.2e}"
    if key in ("diversity", "swd", "change", "copied"):
        return f"{value:.4f}"
    if key in ("runtime_s", "runtime_per_sample_s"):
        return f"{value:.2f}"
    return str(value)


def _rows(evaluations: Sequence[ImageEvaluation], average: dict[str, Any]) -> list[list[str]]:
    rows = []
    for row in [e.summary() for e in evaluations] + [{**average, "size": ""}]:
        rows.append([format_value(key, row.get(key)) for key in HEADERS])
    return rows


def _json(title, settings, evaluations, average) -> bytes:
    document = {
        "title": title,
        "settings": settings,
        "average": average,
        "images": [
            {
                **e.summary(),
                "eval_s": e.eval_s,
                "per_sample": [m.as_dict() for m in e.per_sample],
                "histogram": {"edges": HISTOGRAM_EDGES.tolist(), "fractions": list(e.histogram)},
            }
            for e in evaluations
        ],
    }
    return json.dumps(document, indent=2, default=str).encode()


def _csv(evaluations, average) -> bytes:
    columns = [
        "name",
        "size",
        "samples",
        *METRIC_COLUMNS,
        "copies",
        "runtime_s",
        "runtime_per_sample_s",
    ]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in [e.summary() for e in evaluations] + [{**average, "size": ""}]:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
    return buffer.getvalue().encode()


def _markdown(title, settings, entries, slugs, average) -> str:
    evaluations = [e.evaluation for e in entries]
    lines = [f"# {title}", ""]
    if settings:
        lines += ["Settings: " + ", ".join(f"`{k}={v}`" for k, v in settings.items()), ""]
    lines += [
        "| " + " | ".join(HEADERS.values()) + " |",
        "|" + "|".join("---" if k in ("name", "size") else "---:" for k in HEADERS) + "|",
    ]
    rows = _rows(evaluations, average)
    rows[-1][0] = "**average**"
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", LEGEND, "", "![contact sheet](contact_sheet.png)", ""]
    for entry, slug in zip(entries, slugs, strict=True):
        e = entry.evaluation
        pictures = ["source.png"] + [f"sample-{i}.png" for i in range(len(entry.shown))]
        lines += [f"## {e.name}", ""]
        lines += [" ".join(f"![{p}](images/{slug}/{p})" for p in pictures), ""]
        lines += [f"![histogram](images/{slug}/histogram.png)", ""]
    return "\n".join(lines)


def _html(title, settings, entries, slugs, average) -> str:
    evaluations = [e.evaluation for e in entries]
    esc = html.escape
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
        "<style>body{font-family:sans-serif;margin:1.5em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px}"
        "td.n{text-align:right;font-variant-numeric:tabular-nums}tr.avg{font-weight:bold}"
        ".strip{display:flex;gap:4px;align-items:flex-end;flex-wrap:wrap}"
        ".strip figure{margin:0}.strip img{height:128px;image-rendering:auto}"
        ".strip figcaption{font-size:11px;color:#555}.src img{outline:3px solid #c33}"
        ".copy img{outline:5px dashed #d00}.copy figcaption{color:#d00;font-weight:bold}"
        ".legend{max-width:60em;font-size:13px;color:#444}</style>",
        "</head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    if settings:
        items = ", ".join(f"<code>{esc(str(k))}={esc(str(v))}</code>" for k, v in settings.items())
        parts.append(f"<p>Settings: {items}</p>")
    parts.append("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in HEADERS.values()) + "</tr>")
    rows = _rows(evaluations, average)
    for i, row in enumerate(rows):
        last = i == len(rows) - 1
        name = row[0] if last else f'<a href="#{slugs[i]}">{esc(row[0])}</a>'
        cells = [f"<td>{name}</td>", f"<td>{esc(row[1])}</td>"]
        cells += [f'<td class="n">{esc(c)}</td>' for c in row[2:]]
        parts.append(f"<tr{' class=avg' if last else ''}>" + "".join(cells) + "</tr>")
    parts += [
        "</table>",
        f'<p class="legend">{esc(LEGEND)}</p>',
        '<p><img src="histogram.png" alt="histogram of all images"></p>',
    ]
    for entry, slug in zip(entries, slugs, strict=True):
        e = entry.evaluation
        parts.append(f'<h2 id="{slug}">{esc(e.name)}</h2><div class="strip">')
        parts.append(_figure(f"images/{slug}/source.png", "source", "src"))
        for i, metrics in enumerate(e.per_sample[: len(entry.shown)]):
            caption = f"#{i} coh {metrics.coherence:.1e} swd {metrics.swd:.3f}"
            if metrics.change is not None:
                caption += f" change {metrics.change:.2f}"
            if metrics.copy:
                caption += " COPY"
            parts.append(
                _figure(f"images/{slug}/sample-{i}.png", caption, "copy" if metrics.copy else "")
            )
        parts.append(_figure(f"images/{slug}/histogram.png", "NN distance histogram"))
        parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _figure(src: str, caption: str, css: str = "") -> str:
    css_class = f' class="{css}"' if css else ""
    return (
        f'<figure{css_class}><a href="{src}"><img src="{src}" alt="{html.escape(caption)}">'
        f"</a><figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _unique_slugs(names: Sequence[str]) -> list[str]:
    slugs, seen = [], set()
    for name in names:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "image"
        base, n = slug, 1
        while slug in seen:
            n += 1
            slug = f"{base}-{n}"
        seen.add(slug)
        slugs.append(slug)
    return slugs


# --- pictures (BGR uint8, drawn with OpenCV) ---------------------------------


def _change(evaluation: ImageEvaluation) -> str:
    return "n/a" if evaluation.change is None else f"{evaluation.change:.2f}"


def _float_image(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image)
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    return np.ascontiguousarray(array, dtype=np.float32)


def _bgr(image: np.ndarray) -> np.ndarray:
    rgb = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def _png_bgr(image: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("could not encode a report picture as PNG")
    return buffer.tobytes()


def _text(canvas, text, origin, scale=0.4, color=(40, 40, 40)) -> None:
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)


def _histogram_plot(fractions: Sequence[float], label: str) -> np.ndarray:
    """Bar plot of a nearest-patch histogram (`HISTOGRAM_EDGES` bins) as a BGR picture.

    The first bar (copies) is red and clipped to the tallest other bar, with its
    share written over it; the x axis is logarithmic (decades labelled).
    """
    height, width = PLOT_SIZE
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    left, right, top, bottom = 34, 8, 30, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    fractions = np.asarray(fractions, dtype=np.float64)
    rest = fractions[1:]
    peak = max(float(rest.max()) if rest.size else 0.0, 1e-9)
    bar = plot_w / len(fractions)
    base = top + plot_h
    for i, value in enumerate(fractions):
        x0 = left + round(i * bar)
        x1 = max(x0, left + round((i + 1) * bar) - 2)
        y0 = base - round(min(value / peak, 1.0) * plot_h)
        color = (60, 60, 210) if i == 0 else (180, 110, 60)
        cv2.rectangle(canvas, (x0, y0), (x1, base), color, -1)
    cv2.line(canvas, (left, base), (left + plot_w, base), (0, 0, 0), 1)
    cv2.line(canvas, (left, top), (left, base), (0, 0, 0), 1)
    _text(canvas, f"{peak:.2f}", (2, top + 8), 0.35)
    _text(canvas, "0", (22, base), 0.35)
    _text(canvas, f"copies {fractions[0]:.0%}", (left + 2, top - 4), 0.38, (60, 60, 210))
    for exponent in range(-7, 0):  # decade ticks: edge index 1 + 6 * (exponent + 7)
        x = left + round((1 + 6 * (exponent + 7)) * bar)
        cv2.line(canvas, (x, base), (x, base + 3), (0, 0, 0), 1)
        _text(canvas, f"{exponent}", (x - 6, base + 14), 0.33)
    _text(canvas, "log10 NN patch MSE", (left + plot_w // 2 - 50, height - 3), 0.38)
    _text(canvas, label[:40], (left + 4, 12), 0.4)
    return canvas


def _fit_height(image: np.ndarray, height: int) -> np.ndarray:
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    if image.dtype == np.uint8:
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return _bgr(resize(image, (height, width)))


def _contact_sheet(entries: Sequence[ReportEntry]) -> np.ndarray:
    """One row per image: source (red frame), shown samples, histogram."""
    gap, label_h, h = 6, 16, SHEET_HEIGHT
    rows = []
    for entry in entries:
        e = entry.evaluation
        tiles = [_fit_height(entry.source, h)]
        tiles[0] = cv2.copyMakeBorder(tiles[0][2:-2, 2:-2], 2, 2, 2, 2, cv2.BORDER_CONSTANT,
                                      value=(40, 40, 200))  # fmt: skip
        for sample, metrics in zip(entry.shown, e.per_sample, strict=False):
            tile = _fit_height(sample, h)
            if metrics.copy:  # a red cross over the sample: it is the source handed back
                cv2.rectangle(tile, (0, 0), (tile.shape[1] - 1, h - 1), (0, 0, 230), 4)
                cv2.line(tile, (0, 0), (tile.shape[1] - 1, h - 1), (0, 0, 230), 2)
                _text(tile, "COPY", (6, 20), 0.6, (0, 0, 230))
            tiles.append(tile)
        tiles.append(_fit_height(_histogram_plot(e.histogram, ""), h))
        div = "n/a" if e.diversity is None else f"{e.diversity:.3f}"
        label = (
            f"{e.name}: diversity {div}  coherence {e.coherence:.2e}  "
            f"completeness {e.completeness:.2e}  SWD {e.swd:.4f}  change {_change(e)}  "
            f"copies {e.copies}/{e.samples}"
        )
        # A row of few samples is narrower than its label, which must not lose its end
        # (the copy count).
        label_w = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)[0][0] + 6
        width = max(sum(t.shape[1] for t in tiles) + gap * (len(tiles) - 1), label_w)
        row = np.full((h + label_h, width, 3), 255, dtype=np.uint8)
        x = 0
        for tile in tiles:
            row[label_h : label_h + h, x : x + tile.shape[1]] = tile
            x += tile.shape[1] + gap
        _text(row, label, (2, 12))
        rows.append(row)
    width = max(r.shape[1] for r in rows)
    sheet = np.full((sum(r.shape[0] + gap for r in rows), width, 3), 255, dtype=np.uint8)
    y = 0
    for row in rows:
        sheet[y : y + row.shape[0], : row.shape[1]] = row
        y += row.shape[0] + gap
    return sheet


__all__ = [
    "THUMBNAILS",
    "ImageEvaluation",
    "ReportEntry",
    "averages",
    "build_entry",
    "evaluate_image",
    "write_report",
]
