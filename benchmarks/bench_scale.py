"""FLARE23 scale, simulated: rounds of 500 to 4,000 small phantom cases (32 x 64 x 64,
FLARE23's role mix) through the pipeline's real code.

Real: the intake audit, the Prefect flows of the teacher and student rounds with their
mapped per-case tasks (threads, or Dask with 2 local worker processes), uncertainty
scores, merges, the content store, journals, registry commits, nnU-Net planning and
preprocessing (images once, labels every round), evaluation of val cases and pseudo
labels, `status`. A STAND-IN replaces the network: it turns a case's image into a label
by intensity bands (deterministic per image, so a second round predicts what the first
did) with smoothed one-hot probabilities, in milliseconds; training is skipped (every
round's "model" is one stand-in folder). Each size runs in a fresh workdir:
round 0 (teacher), round 1 (student, every case predicted), round 2 (the same student
again: a round that changes no label), then rounds 3-9 copied in the registry for the
`status` timings.

Per size, one line; then, for the largest,
`cases=<n> per_case_overhead_ms=<x> commit_s=<y> status_s=<z> disk_per_round_mb=<w>`.
overhead per case = (wall time of the predict and merge stages) / cases predicted - the time the
same two per-case steps (stand-in prediction, scores, merge, journals, content
store) take per case in a plain serial loop over 100 of the cases. What is left is
Prefect's task runs, the runner, progress and events; negative when the 2 parallel
workers gain more than orchestration costs.

Usage: python benchmarks/bench_scale.py --cases 4000 [--sizes 500,1000,2000,4000]
       [--runner threads|dask] [--database sqlite|postgres] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHAPE = (32, 64, 64)
VAL_CASES = 20
ORGANS = tuple(range(1, 14))
TUMOR = 14


def flare23_roles(n: int) -> list[tuple[str, tuple[int, ...] | None]]:
    """FLARE23's mix: 4,000 = 2,200 partial (tumour-only the commonest pattern) + 1,800
    unlabeled; a few complete organ cases (strong) and a small val set."""
    from hybridlabel.models.partiality import FLARE23_PATTERNS

    n_strong, n_unlabeled = max(2, round(0.05 * n)), round(0.45 * n)
    n_partial = n - VAL_CASES - n_strong - n_unlabeled
    plan = [("val", ORGANS + (TUMOR,))] * VAL_CASES + [("strong", ORGANS)] * n_strong
    plan += [("partial", FLARE23_PATTERNS[i % len(FLARE23_PATTERNS)]) for i in range(n_partial)]
    return plan + [("unlabeled", None)] * n_unlabeled


def write_cohort(out: Path, n: int) -> Path:
    """n cases from 24 phantoms, each shifted and marked so that every image is its own."""
    import csv

    import SimpleITK as sitk

    from hybridlabel.models.phantom import generate_phantom, phantom_partial_label
    from hybridlabel.tasks.files.imageio import write_image

    bases = [generate_phantom(np.random.default_rng([7, i]), shape=SHAPE) for i in range(24)]
    for sub in ("imagesTr", "labelsTr"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (role, annotated) in enumerate(flare23_roles(n)):
        base, shift = bases[i % len(bases)], (i // len(bases)) % 7 - 3
        image = np.roll(base.image, shift, axis=2).copy()
        image[0, 0, 0] = -1000 + i % 997  # outside the body: the image's own sha256
        case_id = f"case_{i:05d}"

        def img(a):
            im = sitk.GetImageFromArray(a)
            im.SetSpacing(tuple(reversed(base.spacing)))
            return im

        write_image(img(image), out / "imagesTr" / f"{case_id}_0000.nii.gz")
        label = ""
        if annotated:
            base_shifted = type(base)(
                image, np.roll(base.label, shift, 2), np.roll(base.organ_label, shift, 2), base.spacing, base.tumors
            )
            write_image(img(phantom_partial_label(base_shifted, annotated)), out / "labelsTr" / f"{case_id}.nii.gz")
            label = f"labelsTr/{case_id}.nii.gz"
        rows.append(
            {
                "case_id": case_id,
                "image": f"imagesTr/{case_id}_0000.nii.gz",
                "label": label,
                "annotated": " ".join(map(str, annotated or ())),
                "role": "val" if role == "val" else "",
            }
        )
    with open(out / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out / "manifest.csv"


class StandInSegmenter:
    """STAND-IN for the network: intensity bands -> organ ids, deterministic per image."""

    BANDS = np.array([-150, -60, 0, 20, 40, 60, 80, 100, 120, 140, 160, 180, 200, 230], np.float32)

    def predict(self, array, spacing):
        seg = np.digitize(np.asarray(array, np.float32), self.BANDS).astype(np.uint8)
        seg[seg > 13] = 0
        seg[array < -150] = 0
        probs = np.full((15,) + seg.shape, 0.02 / 14, np.float32)
        np.put_along_axis(probs, seg[None].astype(np.int64), 0.98, axis=0)
        return seg, probs


def patch_pipeline(model_dir: Path) -> None:
    """The stand-in network and no training (this process; Dask workers get the same
    through `StandInPlugin`)."""
    import hybridlabel.flows.rounds as rounds
    import hybridlabel.tasks.round_tasks as round_tasks

    round_tasks._segmenter = lambda *a, **k: StandInSegmenter()
    rounds.train_task = lambda *a, **k: str(model_dir)  # training skipped


def serial_seconds_per_case(config, work: Path, round_no: int, model: Path, scratch: Path, sample: int = 100) -> float:
    """Seconds per case of the predict and merge per-case steps in a plain loop (no Prefect)."""
    from hybridlabel.data_registry.store import Registry
    from hybridlabel.models.round_rules import case_scorers, prediction_set
    from hybridlabel.tasks.round_tasks import merge_case_step, predict_case_step

    spec = config.rounds[round_no]
    todo = prediction_set(Registry(work).read("cases", round_no), spec.predict_roles)[:sample]
    scorers = case_scorers(todo, config.selection.scorer)
    shutil.rmtree(scratch, ignore_errors=True)
    started = time.perf_counter()
    for case, score in zip(todo, scorers):
        pred = predict_case_step(
            str(model),
            case,
            str(scratch / "predict"),
            config.label_map,
            "cpu",
            "none",
            "stand-in",
            score,
            None,
            str(scratch / "store"),
        )
        merge_case_step(
            case,
            pred,
            str(scratch / "merge"),
            config.merge,
            config.label_map,
            True,
            spec.targets,
            str(scratch / "store"),
        )
    return (time.perf_counter() - started) / len(todo)


def standin_model(folder: Path) -> Path:
    from hybridlabel.models.nnunet.identity import checkpoint_path

    ckpt = checkpoint_path(folder)
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    ckpt.write_bytes(b"stand-in model: no weights")
    return folder


def config_for(dataset: Path, runner: str, dask_address: str | None):
    from hybridlabel.models.config import PipelineConfig
    from hybridlabel.models.presets import PRESETS

    base = PRESETS["cpu"]().model_dump()
    base.update(
        name="scale",
        dataset=str(dataset),
        nnunet_dataset_id=880,
        task_runner=runner,
        workers=2,
        dask_address=dask_address,
    )
    teacher, student = base["rounds"][0], base["rounds"][-1]
    student = dict(
        student,
        name="student",
        predict_roles=["strong", "partial", "tumor_only", "unlabeled"],
        train_roles=["strong", "partial", "tumor_only", "unlabeled"],
        targets="organs+tumor",
    )
    base["rounds"] = [teacher, student, dict(student, name="student_again")]
    return PipelineConfig.model_validate(base)


def disk_bytes(folder: Path, seen: set) -> int:
    """Bytes on disk of files not counted before (hard links counted once)."""
    total = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def timed_audit(dataset: Path, label_map, scratch: Path) -> tuple[float, float]:
    """The intake audit's seconds and peak memory growth (MB) in this (fresh) process."""
    from hybridlabel.tasks.intake.audit import audit_dataset

    def status_mb(field: str) -> float:
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field))
        return int(line.split()[1]) / 1024

    Path("/proc/self/clear_refs").write_text("5")  # Linux: the peak (VmHWM) starts again from now
    rss0, started = status_mb("VmRSS:"), time.perf_counter()
    audit_dataset(dataset, label_map, None, resample_dir=scratch)
    return time.perf_counter() - started, status_mb("VmHWM:") - rss0


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_size(n: int, base: Path, runner: str, dask_address: str | None, log_file) -> dict:
    from hybridlabel.data_registry.store import Registry
    from hybridlabel.flows.pipeline import task_runner
    from hybridlabel.flows.rounds import student_round, teacher_round

    dataset, work = base / f"cohort{n}", base / f"work{n}"
    t = time.perf_counter()
    write_cohort(dataset, n)
    made = time.perf_counter() - t
    config = config_for(dataset, runner, dask_address)
    model = standin_model(base / "standin-model")
    patch_pipeline(model)
    out = {"cases": n, "cohort_s": made}

    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:  # its own process: its own peak memory
        out["audit_s"], out["audit_rss_mb"] = pool.apply(timed_audit, (dataset, config.label_map, work / "audit"))
    shutil.rmtree(work / "audit", ignore_errors=True)

    reg, seen = Registry(work), set()
    commits: list[float] = []
    real_commit = Registry.commit_round

    def timed_commit(self, *a, **k):
        started = time.perf_counter()
        real_commit(self, *a, **k)
        commits.append(time.perf_counter() - started)

    Registry.commit_round = timed_commit
    t = time.perf_counter()
    teacher_round(config, str(work))
    out["round0_s"] = time.perf_counter() - t
    disk_bytes(work, seen)
    for r in (1, 2):
        t = time.perf_counter()
        student_round.with_options(task_runner=task_runner(config))(config, str(work), r)
        wall = time.perf_counter() - t
        row = reg.round_row(r)
        stages, predicted = json.loads(row["stage_seconds"]), json.loads(row["counts"])["predicted"]
        stage = lambda k: float(stages[k][0] if isinstance(stages[k], list) else stages[k])  # noqa: E731
        per_case = serial_seconds_per_case(config, work, r, model, base / "serial")
        out[f"round{r}"] = {
            "wall_s": wall,
            "predict_s": stage("predict"),
            "merge_s": stage("merge"),
            "preprocess_s": stage("preprocess"),
            "evaluate_s": stage("evaluate"),
            "serial_ms_per_case": 1000 * per_case,
            "commit_s": commits[-1],
            "predicted": predicted,
            "overhead_ms": 1000 * ((stage("predict") + stage("merge")) / predicted - per_case),
            "disk_mb": disk_bytes(work, seen) / 1e6,
        }
        print(f"  round {r}: {json.dumps(out[f'round{r}'])}", file=log_file, flush=True)
    Registry.commit_round = real_commit

    for r in range(3, 10):  # rounds 3-9: round 2's partitions under new numbers
        for table in ("metrics", "cases", "rounds"):
            frame = reg.read(table, 2)
            frame["round"] = r
            reg.write_partition(table, r, frame)
    out["disk_total_10_rounds_mb"] = (disk_bytes(work, set()) + 7 * out["round2"]["disk_mb"] * 1e6) / 1e6
    import hybridlabel
    from hybridlabel.cli.views import metrics_tables

    t = time.perf_counter()
    hybridlabel.status(work)
    out["status_s"] = time.perf_counter() - t
    t = time.perf_counter()
    metrics_tables(work)
    out["status_metrics_s"] = time.perf_counter() - t
    t = time.perf_counter()
    cases = reg.read_all("cases")
    out["read_all_s"], out["registry_rows"] = time.perf_counter() - t, len(cases)
    out["peak_rss_mb"] = rss_mb()
    return out


def postgres_server(base: Path):
    """A Prefect server on its own PostgreSQL (deploy/postgres.sh), both on loopback, for
    this process (PREFECT_API_URL); returns what stops them."""
    import signal
    import socket
    import subprocess
    import urllib.request

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    pg_root = Path(tempfile.mkdtemp(prefix="bench-scale-pg-"))
    pg_root.chmod(0o711)  # PostgreSQL runs as the postgres user
    script = str(ROOT / "deploy" / "postgres.sh")
    url = subprocess.run(
        [script, "start", str(pg_root / "pg"), str(free_port())], check=True, capture_output=True, text=True
    ).stdout.strip()
    port = free_port()
    env = dict(
        os.environ,
        PREFECT_API_DATABASE_CONNECTION_URL=url,
        PREFECT_SERVER_API_HOST="127.0.0.1",
        PREFECT_SERVER_API_PORT=str(port),
    )
    log = open(base / "prefect-server.log", "w")
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("prefect")), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.time() + 180
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2):
                break
        except OSError:
            if time.time() > deadline:
                raise TimeoutError(f"the Prefect server did not start; see {base / 'prefect-server.log'}")
            time.sleep(1)
    os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"

    def stop() -> None:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)
        subprocess.run([script, "stop", str(pg_root / "pg")], check=False)
        shutil.rmtree(pg_root, ignore_errors=True)

    return stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=4000)
    parser.add_argument("--sizes", default="500,1000,2000,4000")
    parser.add_argument("--runner", choices=["threads", "dask"], default="threads")
    parser.add_argument(
        "--database",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="the Prefect server's database: sqlite (Prefect's local server) or postgres "
        "(`prefect server start` on a PostgreSQL cluster, deploy/postgres.sh)",
    )
    parser.add_argument("--keep", type=Path, help="work here and keep it (default: a temporary folder, deleted)")
    args = parser.parse_args()
    sizes = sorted({s for s in map(int, args.sizes.split(",")) if s <= args.cases} | {args.cases})

    from hybridlabel.flows.runner import guard_local_server, prefect_environment

    base = args.keep or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    base.mkdir(parents=True, exist_ok=True)
    prefect_environment(base)
    os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
    stop_server = postgres_server(base) if args.database == "postgres" else None  # before Prefect is imported
    guard_local_server()
    cluster = None
    if args.runner == "dask":
        from distributed import LocalCluster

        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        cluster.get_client().register_plugin(StandInPlugin())
    print(
        f"STAND-IN network (intensity bands, no training); runner {args.runner}; Prefect database "
        f"{args.database}; work in {base}",
        flush=True,
    )
    print(
        f"{'cases':>6} {'audit s':>8} {'audit MB':>8} {'r1 wall s':>9} {'overhead ms/case':>16} {'preproc s':>9} "
        f"{'eval s':>7} {'commit s':>8} {'status s':>8} {'status -m s':>11} {'read all s':>10} "
        f"{'disk r1 MB':>10} {'disk r2 MB':>10} {'10 rounds MB':>12} {'peak MB':>8}",
        flush=True,
    )
    results = []
    with open(base / "rounds.log", "a") as log_file:
        for n in sizes:
            r = run_size(n, base, args.runner, cluster.scheduler_address if cluster else None, log_file)
            results.append(r)
            r1, r2 = r["round1"], r["round2"]
            print(
                f"{n:>6} {r['audit_s']:>8.1f} {r['audit_rss_mb']:>8.0f} {r1['wall_s']:>9.1f} "
                f"{r1['overhead_ms']:>16.1f} {r1['preprocess_s']:>9.1f} {r1['evaluate_s']:>7.1f} "
                f"{r1['commit_s']:>8.2f} {r['status_s']:>8.2f} {r['status_metrics_s']:>11.2f} "
                f"{r['read_all_s']:>10.2f} {r1['disk_mb']:>10.1f} {r2['disk_mb']:>10.1f} "
                f"{r['disk_total_10_rounds_mb']:>12.0f} {r['peak_rss_mb']:>8.0f}",
                flush=True,
            )
            (base / "scale.json").write_text(json.dumps(results, indent=1))
    last = results[-1]
    print(
        f"(round 2 predicts what round 1 did: its disk is what a round that changes no label adds; "
        f"round 2 overhead {last['round2']['overhead_ms']:.1f} ms/case)"
    )
    print(
        f"cases={last['cases']} per_case_overhead_ms={last['round1']['overhead_ms']:.1f} "
        f"commit_s={last['round1']['commit_s']:.2f} status_s={last['status_s']:.2f} "
        f"disk_per_round_mb={last['round2']['disk_mb']:.1f}"
    )
    if cluster:
        cluster.close()
    if stop_server:
        stop_server()
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)


try:
    from distributed.diagnostics.plugin import WorkerPlugin

    class StandInPlugin(WorkerPlugin):
        """The stand-in network in each Dask worker process."""

        def setup(self, worker):
            import hybridlabel.tasks.round_tasks as round_tasks

            round_tasks._segmenter = lambda *a, **k: StandInSegmenter()
except ImportError:  # Dask not installed: threads only
    StandInPlugin = None


if __name__ == "__main__":
    main()
