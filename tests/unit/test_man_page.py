"""The man page cachemgr(8): current with its source, installed by pip.

doc/cachemgr.8 is committed, generated from doc/source/cachemgr.8.rst with
docutils' manpage writer, so that a plain ``pip install .`` installs it
without docutils at build time (like the sample config, a test keeps it
current).
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import docutils.core
from docutils.writers import manpage

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "doc" / "source" / "cachemgr.8.rst"
PAGE = ROOT / "doc" / "cachemgr.8"
REGENERATE = (
    "python -m docutils --writer=manpage doc/source/cachemgr.8.rst doc/cachemgr.8"
)


def without_comments(roff: str) -> list[str]:
    """The page's lines but roff comments (which name the docutils version)."""
    return [line for line in roff.splitlines() if not line.startswith('.\\"')]


def test_man_page_is_current_with_its_source() -> None:
    """The committed page is what docutils makes from the source now."""
    made = docutils.core.publish_string(
        SOURCE.read_text(),
        writer=manpage.Writer(),
        settings_overrides={"halt_level": 2},
    ).decode()
    assert without_comments(made) == without_comments(PAGE.read_text()), (
        f"doc/cachemgr.8 is stale: run {REGENERATE}"
    )


def test_man_page_names_the_exit_codes_and_section() -> None:
    """It is section 8, as the unit's Documentation=man:cachemgr(8) says."""
    page = PAGE.read_text()
    assert '.TH "cachemgr" "8"' in page
    assert ".SH EXIT STATUS" in page
    unit = (ROOT / "systemd" / "cachemgr.service").read_text()
    assert "Documentation=man:cachemgr(8)" in unit.splitlines()


def test_wheel_installs_the_man_page(tmp_path: Path) -> None:
    """``pip install .`` puts it in <prefix>/share/man/man8."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("cachemgr-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        pages = [n for n in archive.namelist() if n.endswith("/man/man8/cachemgr.8")]
        assert pages == ["cachemgr-0.1.0.data/data/share/man/man8/cachemgr.8"]
        assert archive.read(pages[0]).decode() == PAGE.read_text()
