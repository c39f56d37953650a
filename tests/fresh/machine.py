"""A fresh minimal Debian 12 machine: a debootstrap rootfs run in systemd-nspawn.

The README's quick start claims to work "on a fresh Debian or Ubuntu
machine". This machine is the least such a host can be: ``debootstrap
--variant=minbase bookworm`` (no python3, no python3-venv, no qemu-utils),
reaching Debian and PyPI exactly as this machine's apt and pip do (same
mirror, same pip configuration files and ``PIP_*`` variables, the local
paths they name bound read-only), so a README that forgets a package fails
here as it would for a user.

The pristine rootfs is built once and kept as a tarball under
``CACHE_DIR``; every run unpacks a fresh copy, so no run sees what another
installed.
"""

from __future__ import annotations

import configparser
import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "CACHE_DIR",
    "debian_mirror",
    "pip_binds",
    "pristine_rootfs",
    "run_in_machine",
    "unpack_rootfs",
]

SUITE = "bookworm"
CACHE_DIR = Path("/var/cache/cachemgr-ci/minbase-bookworm")
# pip reads these, in this order, after PIP_CONFIG_FILE (pip's own list).
PIP_CONFIG_FILES = (
    "/etc/pip.conf",
    "/etc/xdg/pip/pip.conf",
    "~/.pip/pip.conf",
    "~/.config/pip/pip.conf",
)
APT_DIR = Path("/etc/apt")
PROXY_VARIABLES = ("http_proxy", "https_proxy", "no_proxy", "all_proxy")
CA_BUNDLE_DIR = "/etc/ssl/"
LOCAL_CA_DIR = Path("/usr/local/share/ca-certificates")


def debian_mirror(sources_dir: Path = APT_DIR) -> str:
    """The URI this machine's apt uses for the Debian ``bookworm`` suite.

    Reads deb822 ``*.sources`` and one-line ``*.list`` files; falls back to
    deb.debian.org, Debian's own redirector.
    """
    for path in sorted(sources_dir.glob("sources.list.d/*.sources")):
        for stanza in path.read_text().split("\n\n"):
            fields = dict(
                line.split(":", 1)
                for line in stanza.splitlines()
                if ":" in line and not line.startswith(("#", " "))
            )
            if SUITE in fields.get("Suites", "").split():
                return fields["URIs"].split()[0]
    lists = [sources_dir / "sources.list", *sources_dir.glob("sources.list.d/*.list")]
    for path in lists:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            match = re.match(r"deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+" + SUITE + r"\s", line)
            if match:
                return match.group(1)
    return "http://deb.debian.org/debian"


def pip_binds(environ: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """This machine's pip configuration for the machine: (paths, variables).

    The paths are the configuration files that exist and every local file or
    directory their values or the ``PIP_*`` variables name (certificates,
    constraints, find-links, ``file://`` indexes); they are bound read-only
    at the same place. The variables are ``PIP_*`` and the proxy ones.
    """
    variables = {
        name: value
        for name, value in environ.items()
        if name.startswith("PIP_") or name.lower() in PROXY_VARIABLES
    }
    files = [environ.get("PIP_CONFIG_FILE", ""), *PIP_CONFIG_FILES]
    configs = [Path(f).expanduser() for f in files if f]
    configs = [p for p in configs if p.is_file()]
    values = list(variables.values())
    for config in configs:
        parser = configparser.RawConfigParser()
        parser.read(config)
        values += [parser.get(s, o) for s in parser.sections() for o in parser[s]]
    paths = {str(p) for p in configs}
    for token in " ".join(values).split():
        local = token.removeprefix("file://")
        if token.startswith("file://"):
            # A local index links to its files beside it (../files/...).
            local = os.path.dirname(local.rstrip("/"))
        if local.startswith("/") and os.path.exists(local):
            paths.add(local)
    # The CA bundle belongs to the machine's own ca-certificates, which apt
    # rewrites: bound read-only, its postinst fails. The machine gets this
    # one's local CAs instead (unpack_rootfs) and builds the same bundle.
    return sorted(p for p in paths if not p.startswith(CA_BUNDLE_DIR)), variables


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path``: one builder of the cache at a time."""
    with open(path, "a") as handle:
        fcntl.lockf(handle, fcntl.LOCK_EX)
        yield


def pristine_rootfs(cache_dir: Path = CACHE_DIR) -> tuple[Path, float]:
    """The cached minbase tarball, built first if missing: (path, build seconds).

    Built into a temporary directory and renamed into place, so a killed
    build leaves no half tarball behind.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    tarball = cache_dir / "rootfs.tar"
    with _locked(cache_dir / "build.lock"):
        if tarball.is_file():
            return tarball, 0.0
        started = time.monotonic()
        work = cache_dir / "build"
        shutil.rmtree(work, ignore_errors=True)
        log = cache_dir / "debootstrap.log"
        with open(log, "w") as out:
            subprocess.run(
                ["debootstrap", "--variant=minbase", SUITE, str(work), debian_mirror()],
                stdout=out,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=1200,
            )
        partial = cache_dir / "rootfs.tar.partial"
        with tarfile.open(partial, "w") as tar:
            tar.add(work, arcname=".")
        partial.rename(tarball)
        shutil.rmtree(work)
        return tarball, time.monotonic() - started


def unpack_rootfs(tarball: Path, target: Path) -> None:
    """A fresh copy of the pristine rootfs in ``target``, owners and modes kept."""
    target.mkdir(parents=True)
    subprocess.run(
        ["tar", "-x", "--numeric-owner", "-p", "-f", str(tarball), "-C", str(target)],
        check=True,
        timeout=600,
    )
    # apt options of this machine that change how it reaches its mirror
    # (a proxy, a snapshot's expired Valid-Until): the machine needs them too.
    for conf in Path("/etc/apt/apt.conf.d").glob("*"):
        if conf.is_file() and re.search(r"^\s*Acquire", conf.read_text(), re.M):
            shutil.copy(conf, target / "etc/apt/apt.conf.d" / conf.name)
    # The CAs this machine added to its trust store (an egress proxy's): the
    # machine's ca-certificates adds them to its bundle when apt installs it.
    if LOCAL_CA_DIR.is_dir():
        shutil.copytree(
            LOCAL_CA_DIR, target / str(LOCAL_CA_DIR).lstrip("/"), dirs_exist_ok=True
        )


def run_in_machine(
    root: Path, command: str, workdir: str, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run ``bash -c command`` as root in ``workdir`` of the rootfs ``root``.

    systemd-nspawn without booting, on this machine's network, with this
    machine's pip configuration bound read-only; stdin is /dev/null, as for
    a pasted command that must not ask anything.
    """
    paths, variables = pip_binds(dict(os.environ))
    argv = [
        "systemd-nspawn",
        "--quiet",
        # No machined, no scope of its own: this machine has no system bus.
        "--register=no",
        "--keep-unit",
        "--machine=cachemgr-fresh",
        "--console=pipe",
        "--resolv-conf=copy-host",
        f"--directory={root}",
        f"--chdir={workdir}",
        *(f"--bind-ro={p}" for p in paths),
        *(f"--setenv={k}={v}" for k, v in sorted(variables.items())),
        "bash",
        "-c",
        command,
    ]
    return subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
