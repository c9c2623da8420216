"""gpnn.evaluate: run a dataset, measure the samples, write a report.

>>> from gpnn.evaluate import build_entry, write_report
>>> files = write_report([build_entry("cat", source, samples, runtime_s=12.0)])
>>> sorted(files)[:3]
['contact_sheet.png', 'histogram.png', 'images/cat/histogram.png']
"""

from gpnn.evaluate.report import (
    THUMBNAILS,
    ImageEvaluation,
    ReportEntry,
    averages,
    build_entry,
    evaluate_image,
    write_report,
)
from gpnn.evaluate.runner import Source, find_images, local_generator, run_dataset, write_files

__all__ = [
    "THUMBNAILS",
    "ImageEvaluation",
    "ReportEntry",
    "Source",
    "averages",
    "build_entry",
    "evaluate_image",
    "find_images",
    "local_generator",
    "run_dataset",
    "write_files",
    "write_report",
]
