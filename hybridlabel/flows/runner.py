"""Run the pipeline from the CLI: a scoped Prefect environment and the task runner.

Prefect reads its settings when it is imported, so the environment is set here, in the
command, before the first Prefect import: PREFECT_HOME under the workdir unless the user
chose one (no writes to the user's home), telemetry off.
"""

from __future__ import annotations

import os
from pathlib import Path


class EnvironmentError_(RuntimeError):
    """The Python environment cannot run Prefect's local server."""


def check_argparse_shadow() -> None:
    """Prefect's local server runs uvicorn with site-packages first on sys.path, where the
    old PyPI `argparse` backport (pulled in by unittest2 <- batchgenerators <- nnunetv2)
    then shadows Python's own argparse and the server dies at start."""
    import sysconfig

    shadow = Path(sysconfig.get_paths()["purelib"]) / "argparse.py"
    if shadow.exists():
        raise EnvironmentError_(
            f"{shadow} (the PyPI 'argparse' backport) breaks Prefect's server; "
            "remove it with `pip uninstall -y argparse`"
        )


def check_api_url(timeout_s: float = 5.0) -> None:
    """A PREFECT_API_URL the user set must answer as a Prefect server (`GET /health` is
    `true`); else every command would fail deep inside Prefect's client with a traceback."""
    import json
    import urllib.error
    import urllib.request

    url = os.environ.get("PREFECT_API_URL")
    if not url:
        return
    fix = "start the server (`prefect server start`) or unset PREFECT_API_URL to use a temporary local one"
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=timeout_s) as reply:
            answer = reply.read(64)
    except urllib.error.HTTPError as exc:
        raise EnvironmentError_(
            f"PREFECT_API_URL={url} answers HTTP {exc.code}, not as a Prefect server; {fix}"
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        why = getattr(exc, "reason", None) or exc
        raise EnvironmentError_(f"PREFECT_API_URL={url} cannot be reached ({why}); {fix}") from None
    try:
        healthy = json.loads(answer) is True
    except ValueError:
        healthy = False
    if not healthy:
        raise EnvironmentError_(
            f"PREFECT_API_URL={url} answers, but not as a Prefect server (its /health says {answer[:30]!r}); {fix}"
        )


def prefect_environment(workdir: Path) -> None:
    check_argparse_shadow()
    check_api_url()
    Path(workdir).mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(Path(workdir).resolve() / ".prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
    # the first start migrates a fresh database: on a busy 2-core machine that takes > 20 s
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_API_HOST", "127.0.0.1")


def guard_local_server() -> None:
    """Start Prefect's temporary local server under `flows.server_guard`, so that it ends
    with this process even when this process is killed (Prefect 3.8 starts it with
    `python -m uvicorn ...` from `prefect.server.api.server`; only that call is wrapped)."""
    import subprocess
    import types

    import prefect.server.api.server as server

    if getattr(server.subprocess, "hybridlabel_guard", False):
        return

    def popen(args, *more, **kw):
        args = list(args)
        if args[1:3] == ["-m", "uvicorn"]:
            args = [args[0], "-m", "hybridlabel.flows.server_guard", str(os.getpid()), *args[2:]]
        return subprocess.Popen(args, *more, **kw)

    shim = types.SimpleNamespace(**{k: getattr(subprocess, k) for k in dir(subprocess) if not k.startswith("__")})
    shim.Popen, shim.hybridlabel_guard = popen, True
    server.subprocess = shim


def run_pipeline(
    config_path: Path, workdir: Path, start_round: int | None = None, export: bool = True, before_start=None
) -> dict:
    """Take the workdir, check everything the run relies on, then start the flow: a refused
    run changes nothing and fails with one line before Prefect starts (no flow traceback).
    `before_start()` runs under the lock, after the registry checks (resume supersedes there)."""
    prefect_environment(workdir)
    from hybridlabel.data_registry.store import Registry
    from hybridlabel.flows.pipeline import check_start, first_round_to_run, pipeline
    from hybridlabel.models.config import load_config
    from hybridlabel.tasks.integrity import completed_rounds_problems
    from hybridlabel.tasks.round_inputs import RoundError
    from hybridlabel.tasks.workdir import WorkdirLock

    config = load_config(config_path)
    if config.review.gate and not os.environ.get("PREFECT_API_URL"):
        # a temporary server ends with this process: nobody could open its UI to resume the gate
        raise RoundError(
            "review.gate pauses the run until someone resumes it in the Prefect UI; start a server "
            "(`prefect server start --host 127.0.0.1`) and export PREFECT_API_URL, or set gate: false"
        )
    guard_local_server()
    with WorkdirLock(workdir):
        Registry(workdir).clean_interrupted_writes()  # no writer is at work: the lock is ours
        start = first_round_to_run(workdir, config) if start_round is None else start_round
        problems = Registry(workdir).damaged(before=start) or completed_rounds_problems(workdir, start)
        if problems:
            raise RoundError(problems[0])
        check_start(config, Path(workdir), start)
        if before_start is not None:
            before_start()
        return pipeline(str(Path(config_path).resolve()), str(Path(workdir).resolve()), start, export)
