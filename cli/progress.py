"""The terminal progress bar of the engine commands: by sample, level and iteration,
with the time left; quiet when stderr is not a terminal."""

from __future__ import annotations

import sys

from tqdm import tqdm

from gpnn.core import Progress


class ProgressBar:
    """Counts samples in fractions, so that one long sample shows its progress and the
    time left; `start_group` moves on to the next call's samples (eval-dataset)."""

    def __init__(self, total_samples: int) -> None:
        # tqdm's disable=None turns the bar off when stderr is not a terminal.
        self.bar = tqdm(
            total=total_samples,
            unit="sample",
            disable=None,
            file=sys.stderr,
            bar_format="{l_bar}{bar}| {n:.2f}/{total_fmt} [{elapsed}<{remaining}{postfix}]",
        )
        self.offset = 0

    def __call__(self, event: Progress) -> None:
        self.bar.n = self.offset + event.sample + event.sample_share()
        self.bar.set_postfix_str(
            f"level {event.level + 1}/{event.levels} "
            f"iteration {event.iteration + 1}/{event.iterations}",
            refresh=False,
        )
        self.bar.refresh()

    def start_group(self, samples: int) -> None:
        self.offset += samples

    def describe(self, text: str) -> None:
        self.bar.set_description(text)

    def close(self) -> None:
        self.bar.close()

    def print(self, text: str) -> None:
        """A line of the command's output (stdout), on a line of its own: the bar is
        cleared first and drawn again under it (on a terminal both share the screen)."""
        tqdm.write(text, file=sys.stdout)

    def write(self, text: str) -> None:
        """A line above the bar; nothing when there is no bar (output piped)."""
        if not self.bar.disable:
            self.bar.write(text, file=sys.stderr)
