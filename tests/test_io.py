"""Writes: atomic (a reader sees the old file or the new one, never half), and a full disk is one
line naming the file and the space, with nothing half-written left behind."""

from __future__ import annotations

import errno
import os
import shutil

import pytest

from labelbudget.errors import DiskFullError
from labelbudget.io import atomic_write_text, byte_size

REAL_FDOPEN = os.fdopen


class FullDisk:
    """A file handle on a disk with no room left: every write fails as the kernel says ENOSPC."""

    def __init__(self, fd, mode):
        self.handle = REAL_FDOPEN(fd, mode)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_names_the_file_and_the_space_and_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "runs" / "metrics.json"
    target.parent.mkdir()
    target.write_text("old")
    monkeypatch.setattr("labelbudget.io.os.fdopen", FullDisk)
    with pytest.raises(DiskFullError) as caught:
        atomic_write_text(target, "x" * 3000)
    free = byte_size(shutil.disk_usage(tmp_path).free)
    assert str(caught.value).startswith(
        f"{target}: no space left on the device to write it (2.9 KB needed; "
    )
    assert f"; {free} free on " in str(caught.value)
    assert target.read_text() == "old"  # untouched
    assert sorted(p.name for p in target.parent.iterdir()) == ["metrics.json"]  # no temp file


def test_other_write_errors_are_not_called_a_full_disk(tmp_path, monkeypatch):
    def denied(fd, mode):
        os.close(fd)
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("labelbudget.io.os.fdopen", denied)
    with pytest.raises(PermissionError):
        atomic_write_text(tmp_path / "a.txt", "x")


@pytest.mark.parametrize(
    "n, shown",
    [
        (0, "0 bytes"),
        (1023, "1023 bytes"),
        (1024, "1.0 KB"),
        (1536, "1.5 KB"),
        (3 * 1024**3, "3.0 GB"),
    ],
)
def test_byte_sizes_read_as_people_read_them(n, shown):
    assert byte_size(n) == shown
