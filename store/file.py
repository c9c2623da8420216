"""A store in a local folder (the default)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from gpnn.store.base import ObjectNotFound, StoreError, TransientStoreError, check_key


class FileStore:
    """Objects as files under `root`; writes go to a temporary file then `os.replace`."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.url = f"file://{self.root}"
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".part-", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as error:
            raise TransientStoreError(f"cannot write `{key}`: {error}") from error

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(key) from None
        except OSError as error:
            raise TransientStoreError(f"cannot read `{key}`: {error}") from error

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        """Keys under `prefix`, walking only the deepest folder the prefix names (the
        cost grows with what is listed, not with the whole store)."""
        folder = self.root / prefix.rpartition("/")[0]
        if not folder.resolve().is_relative_to(self.root):
            raise ValueError(f"invalid prefix {prefix!r}")
        keys = []
        for directory, _, names in os.walk(folder):
            for name in names:
                if not name.startswith(".part-"):
                    key = (Path(directory) / name).relative_to(self.root).as_posix()
                    if key.startswith(prefix):
                        keys.append(key)
        return sorted(keys)

    def download_url(self, key: str, expires_s: int) -> str | None:
        return None

    def delete_expired(self, prefix: str, older_than_s: float) -> int:
        """Delete the objects under `prefix` older than `older_than_s`, then the folders
        that this left empty (a job's `inputs/`, `outputs/` and its own folder)."""
        cutoff = time.time() - older_than_s
        deleted = 0
        emptied: set[Path] = set()
        for key in self.list(prefix):
            path = self._path(key)
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    deleted += 1
                    emptied.add(path.parent)
            except FileNotFoundError:
                continue
        # Deepest first, so a job's folder goes after its subfolders.
        for folder in sorted(emptied, key=lambda f: len(f.parts), reverse=True):
            self._remove_empty_folders(folder)
        return deleted

    def _remove_empty_folders(self, folder: Path) -> None:
        """Remove `folder` and its parents below the root while they are empty. A folder
        that a concurrent `put` has just written into is not empty and stays; a `put`
        whose folder vanished under it fails with a transient error and is retried."""
        while folder != self.root and self.root in folder.parents:
            try:
                folder.rmdir()
            except OSError:  # not empty (or already gone)
                if folder.exists():
                    return
            folder = folder.parent

    def ping(self) -> None:
        if not self.root.is_dir() or not os.access(self.root, os.W_OK):
            raise StoreError(f"store folder `{self.root}` is not writable")
