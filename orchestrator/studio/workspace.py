"""The studio's files: the campaign files under one folder, read with a version and saved
atomically, never outside the folder.

A file is named by its path relative to the folder (`cart-recovery.yaml`,
`segments/shared.yaml`). A name that leaves the folder (`..`, an absolute path, a
symbolic link pointing out), that is not `.yaml`/`.yml`, or whose text is larger than
`MAX_BYTES` is refused. A save writes a temporary file beside the target and renames it
over the target (readers see the old or the new text, never half of it), and only when
the file still has the version the editor opened: two tabs on one file cannot silently
overwrite each other.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import CampaignError

MAX_BYTES = 1_000_000  # the loader's own limit for a campaign file
SUFFIXES = (".yaml", ".yml")
MAX_FILES = 2000  # listed under one folder


class StudioError(CampaignError):
    """A request the studio refuses: a name outside the folder, a text too large, …"""


class SaveConflict(StudioError):
    """The file changed on disk since the editor opened it."""

    def __init__(self, name: str, current: str | None, version: str | None) -> None:
        super().__init__(f"{name} changed on disk since it was opened")
        self.current = current  # the text on disk now (None: the file is gone)
        self.version = version


@dataclass(frozen=True)
class FileText:
    name: str
    text: str
    version: str  # sha256 of the bytes on disk; "" for a file that does not exist yet


def version_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Workspace:
    """The campaign files under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        if not self.root.is_dir():
            raise StudioError(f"{root}: not a folder")
        self._lock = threading.Lock()

    def path(self, name: str) -> Path:
        """The file `name` names, checked to be a campaign file inside the folder."""
        if not isinstance(name, str) or not name or len(name) > 500 or "\0" in name:
            raise StudioError("file: expected a relative path to a .yaml file in the folder")
        relative = Path(name)
        if relative.is_absolute() or ".." in relative.parts:
            raise StudioError(f"{name[:100]}: outside the campaigns folder")
        if relative.suffix not in SUFFIXES:
            raise StudioError(f"{name[:100]}: not a campaign file (.yaml or .yml)")
        target = self.root / relative
        resolved = target.resolve()
        if not resolved.is_relative_to(self.root):
            raise StudioError(f"{name[:100]}: outside the campaigns folder (a link leads out)")
        return target

    def names(self) -> list[str]:
        """Every campaign file under the folder (links that lead out are left out)."""
        found: list[str] = []
        for path in sorted(self.root.rglob("*")):
            if path.suffix not in SUFFIXES or not path.is_file():
                continue
            if not path.resolve().is_relative_to(self.root):
                continue
            found.append(path.relative_to(self.root).as_posix())
            if len(found) >= MAX_FILES:
                break
        return found

    def read(self, name: str) -> FileText:
        """The file's text and version; a file not there yet reads as empty, version ""."""
        path = self.path(name)
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_BYTES + 1)
        except FileNotFoundError:
            return FileText(name, "", "")
        except OSError as exc:
            raise StudioError(f"{name}: cannot be read ({exc.strerror or exc})") from None
        if len(data) > MAX_BYTES:
            raise StudioError(f"{name}: larger than {MAX_BYTES:,} bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StudioError(f"{name}: not UTF-8 text (byte {exc.start})") from None
        return FileText(name, text, version_of(data))

    def save(self, name: str, text: str, *, base_version: str) -> FileText:
        """Write `text` exactly as given, if the file on disk is still `base_version`
        ("" for a new file); raise SaveConflict otherwise. Returns the new version."""
        path = self.path(name)
        data = text.encode("utf-8")
        if len(data) > MAX_BYTES:
            raise StudioError(f"{name}: larger than {MAX_BYTES:,} bytes")
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:  # two tabs saving at once: the second sees the first's version
            current = self._current(name)
            if current.version != base_version:
                raise SaveConflict(name, current.text if current.version else None, current.version)
            self._replace(path, data)
        return FileText(name, text, version_of(data))

    @staticmethod
    def _replace(path: Path, data: bytes) -> None:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            if path.exists():
                os.chmod(temporary, path.stat().st_mode & 0o777)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def _current(self, name: str) -> FileText:
        try:
            return self.read(name)
        except StudioError:
            return FileText(name, "", "unreadable")
