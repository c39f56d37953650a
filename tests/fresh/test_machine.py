"""machine: the fresh machine reaches Debian and PyPI as this one does."""

from __future__ import annotations

from pathlib import Path

from tests.fresh import machine


class TestDebianMirror:
    def test_deb822_sources(self, tmp_path: Path) -> None:
        """The URI of the stanza that serves bookworm, not another suite's."""
        (tmp_path / "sources.list.d").mkdir()
        (tmp_path / "sources.list.d" / "debian.sources").write_text(
            "Types: deb\nURIs: http://security.example/debian-security\n"
            "Suites: bookworm-security\n\n"
            "Types: deb\nURIs: http://mirror.example/debian\n"
            "Suites: bookworm bookworm-updates\nComponents: main\n"
        )
        assert machine.debian_mirror(tmp_path) == "http://mirror.example/debian"

    def test_one_line_sources_list(self, tmp_path: Path) -> None:
        """The classic format, options in brackets included."""
        (tmp_path / "sources.list").write_text(
            "deb [arch=amd64] http://old.example/debian bookworm main\n"
        )
        assert machine.debian_mirror(tmp_path) == "http://old.example/debian"


class TestPipBinds:
    def test_config_file_and_the_local_paths_it_names(self, tmp_path: Path) -> None:
        """The file, its constraint file and a file:// index's directory are
        bound; the CA bundle is left to the machine's ca-certificates."""
        (tmp_path / "index" / "simple").mkdir(parents=True)
        constraints = tmp_path / "constraints.txt"
        constraints.write_text("")
        config = tmp_path / "pip.conf"
        config.write_text(
            f"[global]\nconstraint = {constraints}\n"
            f"extra-index-url = file://{tmp_path}/index/simple\n"
            "cert = /etc/ssl/certs/ca-certificates.crt\n"
        )
        environ = {"PIP_CONFIG_FILE": str(config), "PIP_NO_CACHE_DIR": "1", "X": "y"}

        paths, variables = machine.pip_binds(environ)

        assert str(config) in paths
        assert str(constraints) in paths
        assert str(tmp_path / "index") in paths
        assert not [p for p in paths if p.startswith("/etc/ssl/")]
        assert variables == {"PIP_CONFIG_FILE": str(config), "PIP_NO_CACHE_DIR": "1"}
