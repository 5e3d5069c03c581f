"""Per-case work fanned out as Prefect tasks: cases in task-sized chunks, a chunk task
mapped over them, its results gathered in case order while a progress artifact moves."""

from __future__ import annotations

from hybridlabel.tasks.events import emit


def chunks(items: list, workers: int, max_size: int = 32) -> list[list]:
    """Per-case work in task-sized chunks: about 4 chunks per worker, at most `max_size`
    cases each, one case per task for small rounds. A Prefect task run costs ~10 ms on
    threads and ~130 ms on Dask (measured: benchmarks/bench_scale.py), as much as the
    per-case work itself at FLARE23's 4,000 cases."""
    size = max(1, min(max_size, len(items) // (4 * max(1, workers))))
    return [items[i : i + size] for i in range(0, len(items), size)]


def in_flow_run() -> bool:
    from prefect.context import FlowRunContext

    return FlowRunContext.get() is not None


class Progress:
    """A Prefect progress artifact (and the run's progress events of `stage`) moved as
    per-case tasks finish. The artifact moves by whole percents: each update is a call to
    the server, and at FLARE23's 4,000 cases one per case would be 4,000 calls a stage."""

    def __init__(self, key: str, total: int, description: str, stage: str):
        self.total, self.done, self.id, self.stage, self.shown = max(total, 1), 0, None, stage, 0
        if in_flow_run():
            from prefect.artifacts import create_progress_artifact

            self.id = create_progress_artifact(0.0, key=key, description=description)

    def advance(self, cases: int = 1) -> None:
        self.done += cases
        for _ in range(cases):
            emit("advance", stage=self.stage)
        percent = 100 * self.done // self.total
        if self.id is not None and percent > self.shown:
            from prefect.artifacts import update_progress_artifact

            self.shown = percent
            update_progress_artifact(self.id, float(percent))


def map_chunks(
    task, workers: int, progress: Progress | None, case_ids: list[str], per_case: dict[str, list], **shared
) -> list:
    """A chunk task (`predict_cases_task`, ...) mapped over task-sized chunks of per-case
    arguments (`chunks`); its results flattened, in case order."""
    from prefect import unmapped

    index = chunks(list(range(len(case_ids))), workers)
    futures = task.map(
        **{k: [[v[i] for i in b] for b in index] for k, v in per_case.items()},
        **{k: unmapped(v) for k, v in shared.items()},
        first=[case_ids[b[0]] for b in index],
        last=[case_ids[b[-1]] for b in index],
    )
    return wait_chunks(futures, [len(b) for b in index], progress)


def wait_chunks(futures, sizes: list[int], progress: Progress | None = None) -> list:
    """Results of chunk tasks (each a list), flattened in submission order; `progress`
    moves by a chunk's cases as it finishes."""
    from prefect.futures import as_completed

    size_of = {f.task_run_id: n for f, n in zip(futures, sizes)}
    for done in as_completed(futures):
        if progress:
            progress.advance(size_of[done.task_run_id])
    return [r for f in futures for r in f.result()]
