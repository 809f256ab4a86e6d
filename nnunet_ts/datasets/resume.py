"""Resumable work folders: long writes (cohorts, datasets) continue where they stopped.

A command builds its output in a hidden sibling folder (``.<name>.partial``) and renames it into
place only when complete, so the real output is never half-written. The work folder remembers the
settings it was started with (a JSON *fingerprint*) and logs every finished item (one JSON line per
item, flushed as it completes). Rerun with the same settings after an interruption or an error, the
finished items are skipped unless their input files changed (:func:`file_signature` hashes their
contents); rerun with other settings, the work folder is started afresh. Names
starting with '.' are ignored by nnU-Net's dataset lookup.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

_FINGERPRINT = ".fingerprint.json"
_LOG = ".done.jsonl"


class WorkFolder:
    """The hidden work folder of ``target``; created, or reused when its fingerprint matches (and
    ``resume``)."""

    def __init__(self, target: Path, fingerprint: dict[str, Any], resume: bool = True):
        self.target = Path(target)
        self.path = self.target.with_name(f".{self.target.name}.partial")
        self._fingerprint = json.loads(json.dumps(fingerprint, sort_keys=True, default=str))
        self.done: dict[str, Any] = {}
        if resume and self.path.is_dir() and self._stored_fingerprint() == self._fingerprint:
            self.done = self._read_log()
        else:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path.mkdir(parents=True)
            (self.path / _FINGERPRINT).write_text(json.dumps(self._fingerprint, sort_keys=True))

    @property
    def resumed(self) -> int:
        """Number of items finished by an earlier run."""
        return len(self.done)

    def mark_done(self, key: str, record: Any) -> None:
        """Log an item as finished (the record is returned by ``done[key]`` on a rerun)."""
        self.done[key] = record
        with (self.path / _LOG).open("a") as f:
            f.write(json.dumps({"key": key, "record": record}, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def finish(self) -> Path:
        """Drop the bookkeeping and rename the folder onto ``target`` (an old one is replaced last)."""
        for name in (_FINGERPRINT, _LOG):
            (self.path / name).unlink(missing_ok=True)
        old = None
        if self.target.exists():
            old = self.target.with_name(f".{self.target.name}.replaced")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(self.target, old)
        os.replace(self.path, self.target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.target

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def _stored_fingerprint(self) -> Any:
        try:
            return json.loads((self.path / _FINGERPRINT).read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def _read_log(self) -> dict[str, Any]:
        done = {}
        log = self.path / _LOG
        if log.is_file():
            for line in log.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    break  # a line cut by the interruption: that item is redone
                done[entry["key"]] = entry["record"]
        return done


def file_signature(path: Path | None) -> list | None:
    """What an input file holds: (resolved path, size, SHA-256 of its bytes).

    Keyed on content, not modification time: an input edited in place (even with its old mtime
    restored, as ``cp -p`` or ``rsync -t`` do) invalidates its finished item, and a file merely
    touched does not. The hash is cached per (path, size, mtime, ctime, inode) within a process.
    """
    if path is None:
        return None
    path = Path(path).resolve()
    stat = path.stat()
    return [str(path), stat.st_size, _sha256(str(path), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns,
                                             stat.st_ino)]


@functools.lru_cache(maxsize=4096)
def _sha256(path: str, size: int, mtime_ns: int, ctime_ns: int, inode: int) -> str:
    # ctime changes on every write and every utime(), so a cached hash is never stale
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
