"""The storage's record of its last pass: read safely, written atomically,
and never trusted past what it says (DESIGN 1.8, 1.11)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from cachemgr.cache.storage_record import (
    RECORD_FILE_NAME,
    LastPass,
    read_last_pass,
    write_last_pass,
)
from tests.support.deadline import deadline

LAST = LastPass(host="cmp2", ended_at_epoch=1_800_000_000.25, files=12, removed=3)


def record(instances: Path, last_completed: object, **document: object) -> Path:
    path = instances / RECORD_FILE_NAME
    body = {"format": 1, "last_completed": last_completed, **document}
    path.write_text(json.dumps(body), encoding="utf-8")
    return path


class TestRoundTrip:
    def test_what_is_written_is_read_back(self, tmp_path):
        assert write_last_pass(str(tmp_path), LAST)
        assert read_last_pass(str(tmp_path)) == LAST

    def test_the_file_is_the_contract_s_json(self, tmp_path):
        """Other hosts, maybe of another version, read these exact keys."""
        write_last_pass(str(tmp_path), LAST)
        document = json.loads((tmp_path / RECORD_FILE_NAME).read_text())
        assert document == {
            "format": 1,
            "last_completed": {
                "host": "cmp2",
                "ended_at_epoch": 1_800_000_000.25,
                "files": 12,
                "removed": 3,
            },
        }

    def test_a_temporary_file_left_by_a_killed_run_is_replaced(self, tmp_path):
        (tmp_path / f".{RECORD_FILE_NAME}.tmp").write_text("half")
        assert write_last_pass(str(tmp_path), LAST)
        assert sorted(os.listdir(tmp_path)) == [RECORD_FILE_NAME]

    def test_the_file_belongs_to_the_owner_of_instances_path(self, tmp_path):
        os.chown(tmp_path, 4321, 4321)
        write_last_pass(str(tmp_path), LAST)
        st = os.stat(tmp_path / RECORD_FILE_NAME)
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (4321, 4321, 0o644)

    def test_no_record_is_none_and_quiet(self, tmp_path, caplog):
        with caplog.at_level(logging.WARNING):
            assert read_last_pass(str(tmp_path)) is None
        assert not caplog.records


class TestUntrusted:
    """Whoever owns the storage may have planted anything there."""

    def test_a_symlink_is_not_followed(self, tmp_path, caplog):
        elsewhere = tmp_path / "elsewhere.json"
        elsewhere.write_text(json.dumps({"format": 1, "last_completed": {}}))
        instances = tmp_path / "instances"
        instances.mkdir()
        (instances / RECORD_FILE_NAME).symlink_to(elsewhere)
        with caplog.at_level(logging.WARNING):
            assert read_last_pass(str(instances)) is None
        assert "symbolic link" in caplog.text
        assert RECORD_FILE_NAME in caplog.text

    def test_a_fifo_is_not_waited_on(self, tmp_path, caplog):
        os.mkfifo(tmp_path / RECORD_FILE_NAME)
        with deadline(10), caplog.at_level(logging.WARNING):
            assert read_last_pass(str(tmp_path)) is None
        assert "FIFO" in caplog.text

    def test_writing_replaces_a_planted_symlink_not_its_target(self, tmp_path):
        target = tmp_path / "target"
        target.write_text("keep me")
        instances = tmp_path / "instances"
        instances.mkdir()
        (instances / RECORD_FILE_NAME).symlink_to(target)
        assert write_last_pass(str(instances), LAST)
        assert target.read_text() == "keep me"
        assert read_last_pass(str(instances)) == LAST

    @pytest.mark.parametrize(
        ("last_completed", "field"),
        [
            ("yesterday", "last_completed"),
            ({"ended_at_epoch": 1, "files": 1, "removed": 0}, "host"),
            ({"host": "", "ended_at_epoch": 1, "files": 1, "removed": 0}, "host"),
            ({"host": "a\nb", "ended_at_epoch": 1, "files": 1, "removed": 0}, "host"),
            ({"host": "a", "ended_at_epoch": "1", "files": 1, "removed": 0}, "ended"),
            ({"host": "a", "ended_at_epoch": True, "files": 1, "removed": 0}, "ended"),
            (
                {"host": "a", "ended_at_epoch": 10**400, "files": 1, "removed": 0},
                "ended",
            ),
            ({"host": "a", "ended_at_epoch": 1, "files": -1, "removed": 0}, "files"),
            ({"host": "a", "ended_at_epoch": 1, "files": 1, "removed": 0.5}, "removed"),
        ],
    )
    def test_a_bad_field_is_named_and_the_record_ignored(
        self, tmp_path, caplog, last_completed, field
    ):
        path = record(tmp_path, last_completed)
        with caplog.at_level(logging.WARNING):
            assert read_last_pass(str(tmp_path)) is None
        assert str(path) in caplog.text
        assert field in caplog.text

    @pytest.mark.parametrize(
        "data",
        [b"", b"{", b"[1]", b'{"format": 2}', b"[" * 100_000, b" " * 70_000],
    )
    def test_what_is_not_a_record_is_ignored(self, tmp_path, caplog, data):
        (tmp_path / RECORD_FILE_NAME).write_bytes(data)
        with caplog.at_level(logging.WARNING):
            assert read_last_pass(str(tmp_path)) is None
        assert "is not cachemgr's record" in caplog.text
