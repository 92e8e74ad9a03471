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

import contextlib
import hashlib
import os
import secrets
import stat
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
        if not isinstance(name, str) or not name or len(name) > 500:
            raise StudioError("file: expected a relative path to a .yaml file in the folder")
        if any(ord(c) < 32 or ord(c) == 127 for c in name):
            raise StudioError("file: a name without control characters, please")
        relative = Path(name)
        if relative.is_absolute() or ".." in relative.parts:
            raise StudioError(f"{name[:100]}: outside the campaigns folder")
        if any(part.startswith(".") for part in relative.parts):
            raise StudioError(f"{name[:100]}: hidden files and folders are not campaign files")
        if relative.suffix not in SUFFIXES:
            raise StudioError(f"{name[:100]}: not a campaign file (.yaml or .yml)")
        target = self.root / relative
        try:
            resolved = target.resolve()
        except (OSError, RuntimeError):  # a loop of links, a name too long
            raise StudioError(f"{name[:100]}: cannot be resolved") from None
        if not resolved.is_relative_to(self.root):
            raise StudioError(f"{name[:100]}: outside the campaigns folder (a link leads out)")
        return target

    def names(self) -> list[str]:
        """Every campaign file under the folder (hidden ones, and links that lead out, are
        left out)."""
        found: list[str] = []
        for path in sorted(self.root.rglob("*")):
            if path.suffix not in SUFFIXES:
                continue
            relative = path.relative_to(self.root)
            if any(part.startswith(".") for part in relative.parts):
                continue
            try:
                if not path.is_file() or not path.resolve().is_relative_to(self.root):
                    continue
            except (OSError, RuntimeError):
                continue
            found.append(relative.as_posix())
            if len(found) >= MAX_FILES:
                break
        return found

    def read(self, name: str) -> FileText:
        """The file's text and version; a file not there yet reads as empty, version "".
        Anything but a regular file (a FIFO, a device, a folder) is refused unopened."""
        path = self.path(name)
        try:
            handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            return FileText(name, "", "")
        except OSError as exc:
            raise StudioError(f"{name}: cannot be read ({exc.strerror or exc})") from None
        try:
            if not stat.S_ISREG(os.fstat(handle).st_mode):
                raise StudioError(f"{name}: not a regular file")
            with os.fdopen(handle, "rb", closefd=False) as stream:
                data = stream.read(MAX_BYTES + 1)
        except OSError as exc:
            raise StudioError(f"{name}: cannot be read ({exc.strerror or exc})") from None
        finally:
            os.close(handle)
        if len(data) > MAX_BYTES:
            raise StudioError(f"{name}: larger than {MAX_BYTES:,} bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StudioError(f"{name}: not UTF-8 text (byte {exc.start})") from None
        return FileText(name, text, version_of(data))

    def save(self, name: str, text: str, *, base_version: str) -> FileText:
        """Write `text` exactly as given, if the file on disk is still `base_version`
        ("" for a new file); raise SaveConflict otherwise, and StudioError for a file the
        studio cannot read (it never writes over what it could not show). A name that is
        a link inside the folder saves to the file it points to."""
        path = self.path(name)
        data = text.encode("utf-8")
        if len(data) > MAX_BYTES:
            raise StudioError(f"{name}: larger than {MAX_BYTES:,} bytes")
        with self._lock:  # two tabs saving at once: the second sees the first's version
            current = self.read(name)
            if current.version != base_version:
                raise SaveConflict(name, current.text if current.version else None, current.version)
            try:
                self._write(path, data)
            except OSError as exc:
                raise StudioError(f"{name}: not saved ({exc.strerror or exc})") from None
        return FileText(name, text, version_of(data))

    def _write(self, path: Path, data: bytes) -> None:
        """Create the missing folders, then write a temporary file in the target's real
        folder and rename it over the target, both through one handle on that folder,
        checked to be inside the campaigns folder: a link swapped into the path meanwhile
        cannot move the write elsewhere."""
        real = path.resolve()
        real.parent.mkdir(parents=True, exist_ok=True)
        folder = os.open(real.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            where = Path(os.readlink(f"/proc/self/fd/{folder}"))
            if not where.is_relative_to(self.root):
                raise StudioError(f"{path.name}: outside the campaigns folder (a link leads out)")
            temporary = f".{real.name}.{secrets.token_hex(6)}.tmp"
            handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=folder)
            try:
                with os.fdopen(handle, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                with contextlib.suppress(FileNotFoundError):  # keep the file's mode
                    os.chmod(
                        temporary, os.stat(real.name, dir_fd=folder).st_mode & 0o777, dir_fd=folder
                    )
                os.replace(temporary, real.name, src_dir_fd=folder, dst_dir_fd=folder)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary, dir_fd=folder)
                raise
        finally:
            os.close(folder)
