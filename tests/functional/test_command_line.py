"""What ``cachemgr --help`` tells a newcomer, and options that must not crash."""

from __future__ import annotations

from pathlib import Path

from tests.support.hosts import Host, run_cachemgr


def test_help_says_what_it_does_the_exit_codes_and_the_docs() -> None:
    """--help: the job, the three exit codes, where to read more; no warning."""
    run = run_cachemgr("--help")

    assert run.returncode == 0, run.output
    text = " ".join(run.stdout.split())
    assert "Keep the image cache of an OpenStack compute host clean" in text
    assert (
        "Exit status: 0 the pass completed (or the daemon stopped cleanly); 1 the "
        "pass failed or was refused, nothing was removed; 2 configuration error, "
        "named on stderr." in text
    )
    assert "Documentation: man 8 cachemgr; README.rst" in text
    assert run.stderr == ""


def test_shell_completion_is_gone_not_a_traceback() -> None:
    """oslo.config's --shell_completion (its template is not installed) is
    neither offered nor a crash: an unknown argument, exit 2."""
    assert "shell_completion" not in run_cachemgr("--help").stdout

    run = run_cachemgr("--shell_completion", "bash")

    assert run.returncode == 2, run.output
    assert "unrecognized arguments: --shell_completion bash" in run.stderr
    assert "Traceback" not in run.output


def test_a_pass_prints_no_warning_on_stderr(tmp_path: Path) -> None:
    """No deprecation warning (eventlet's, oslo's) reaches the operator."""
    host = Host(tmp_path)
    host.write()

    run = host.run()

    assert run.returncode == 0, run.output
    assert run.stderr == ""
    assert "Warning" not in run.stdout, run.stdout
