"""The state of an evaluation's output folder, kept exactly once and never mixed.

* :class:`FolderLock`: one ``medix-verl eval`` per output folder (an OS file lock, released when
  the process ends, even by ``kill -9``); a second one is refused with the holder's pid, host and
  command line.
* :func:`check_fingerprint`: ``run.json`` records what defines the run (models, protocol, rounds,
  prompts, generation and judge parameters, and a hash of each task's data); a resume that differs
  is refused, naming what differs, unless ``--force-new`` moves the old run aside.
* :class:`SampleLog`: ``samples.jsonl``, one JSON record per line, appended with one write each;
  the newest record of a sample wins (a failure is retried on resume and superseded); only a torn
  *last* line is cut; a bad line elsewhere is skipped and reported with its line number; the log
  is compacted to one record per sample when a run ends.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import socket
import sys
from pathlib import Path

from filelock import FileLock, Timeout

LOCK_NAME = ".medix-eval.lock"
HOLDER_NAME = ".medix-eval.holder.json"
RUN_NAME = "run.json"
LOG_NAME = "samples.jsonl"


class RunStateError(ValueError):
    """The output folder cannot be used for this run (busy, or holds another run)."""


class FolderLock:
    """Exclusive use of an evaluation output folder."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.folder / LOCK_NAME))
        self._holder = self.folder / HOLDER_NAME

    def __enter__(self) -> FolderLock:
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise RunStateError(
                f"{self.folder} is in use by another medix-verl eval ({self._describe_holder()}); "
                "wait for it to finish or choose another --output"
            ) from None
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "argv": sys.argv,
        }
        self._holder.write_text(json.dumps(holder) + "\n")
        return self

    def __exit__(self, *exc) -> None:
        self._holder.unlink(missing_ok=True)
        self._lock.release()

    def _describe_holder(self) -> str:
        try:
            h = json.loads(self._holder.read_text())
            return f"pid {h['pid']} on {h['host']} since {h['started']}: {' '.join(h.get('argv') or [])}"
        except (OSError, ValueError, KeyError):
            return "holder unknown"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _flatten(prefix: str, value, out: dict) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else k, v, out)
    else:
        out[prefix] = value


def check_fingerprint(folder: Path, settings: dict, task_hashes: dict[str, str], *, force_new: bool) -> dict:
    """Compare this run with the one recorded in ``folder`` and record the union.

    ``settings``: what must be equal for answers to be reused; ``task_hashes``: task -> data hash
    (tasks not run before are added; a task run before must have the same data). With
    ``force_new`` a previous run is moved to ``folder/previous-<UTC time>/`` first.
    Returns the recorded run description.
    """
    folder = Path(folder)
    run_path = folder / RUN_NAME
    log_path = folder / LOG_NAME
    if force_new and (run_path.exists() or log_path.exists()):
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        aside = folder / f"previous-{stamp}"
        aside.mkdir()
        for name in (RUN_NAME, LOG_NAME, "results.json", "results.md", "results.png"):
            if (folder / name).exists():
                os.replace(folder / name, aside / name)
    if run_path.exists():
        old = json.loads(run_path.read_text())
        differ = []
        flat_old, flat_new = {}, {}
        _flatten("", old.get("settings", {}), flat_old)
        _flatten("", settings, flat_new)
        for key in sorted(set(flat_old) | set(flat_new)):
            if flat_old.get(key) != flat_new.get(key):
                differ.append(f"{key}: recorded {flat_old.get(key)!r}, now {flat_new.get(key)!r}")
        for task, digest in task_hashes.items():
            recorded = old.get("tasks", {}).get(task)
            if recorded is not None and recorded != digest:
                differ.append(f"task data {task}: recorded sha256 {recorded[:12]}..., now {digest[:12]}...")
        if differ:
            raise RunStateError(
                f"{folder} holds another run; resuming would mix its answers with this one's:\n  "
                + "\n  ".join(differ)
                + "\nuse another --output, or --force-new to move the old run aside and start again"
            )
        tasks = {**old.get("tasks", {}), **task_hashes}
    elif log_path.exists() and log_path.stat().st_size:
        raise RunStateError(
            f"{log_path} has samples but no {RUN_NAME} to tell which run they belong to; "
            "use another --output, or --force-new to move them aside"
        )
    else:
        tasks = dict(task_hashes)
    record = {"settings": settings, "tasks": dict(sorted(tasks.items()))}
    tmp = run_path.with_name(RUN_NAME + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, run_path)
    return record


def record_key(rec: dict) -> tuple[str, str, str]:
    """task, id, variant (``""``, or the image ablation's mode)."""
    return (rec["task"], str(rec["id"]), rec.get("variant", ""))


class SampleLog:
    """``samples.jsonl``: one JSON line per finished sample (a success or a counted failure)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.done: dict[tuple[str, str], dict] = {}
        self.skipped_lines: list[int] = []  # bad lines that are not the torn tail
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self._read()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _read(self) -> None:
        raw = self.path.read_bytes()
        lines = raw.split(b"\n")
        torn_tail = not raw.endswith(b"\n") and bool(lines[-1])
        offset = 0
        for number, line in enumerate(lines, 1):
            is_last = number == len(lines) or (number == len(lines) - 1 and lines[-1] == b"")
            if line.strip():
                try:
                    rec = json.loads(line)
                    self.done[record_key(rec)] = rec
                except (ValueError, KeyError, TypeError):
                    if is_last and torn_tail:  # a line cut by a kill: the only thing ever cut
                        with open(self.path, "r+b") as handle:
                            handle.truncate(offset)
                        return
                    self.skipped_lines.append(number)
                else:
                    if is_last and torn_tail:  # a whole record without its newline: keep it, end the line
                        with open(self.path, "ab") as handle:
                            handle.write(b"\n")
            offset += len(line) + 1

    @staticmethod
    def read_only(path: Path) -> dict:
        """The newest record of each sample in another run's log, without touching it (unreadable
        lines are left out)."""
        done = {}
        for line in Path(path).read_bytes().split(b"\n"):
            if line.strip():
                try:
                    rec = json.loads(line)
                    done[record_key(rec)] = rec
                except (ValueError, KeyError, TypeError):
                    continue
        return done

    def append(self, record: dict) -> None:
        os.write(self._fd, (json.dumps(record, ensure_ascii=False) + "\n").encode())
        self.done[record_key(record)] = record

    def compact(self) -> None:
        """Rewrite the log with the newest record of each sample, once (atomically)."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            for record in self.done.values():
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.close(self._fd)
        os.replace(tmp, self.path)
        self.skipped_lines = []
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def close(self) -> None:
        os.close(self._fd)
