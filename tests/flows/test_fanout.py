"""Fan-out: task-sized chunks of cases; the progress artifact moves by whole percents
(one server call per percent, not per case)."""

import prefect.artifacts

from hybridlabel.flows.fanout import Progress, chunks


def test_chunks_cover_every_case_once_in_order():
    assert chunks(list(range(12)), workers=2) == [[i] for i in range(12)]  # small rounds: one case per task
    big = chunks(list(range(4000)), workers=2)
    assert [len(c) for c in big] == [32] * 125  # capped at 32 cases a task
    assert [x for c in big for x in c] == list(range(4000))
    mid = chunks(list(range(100)), workers=2)
    assert len(mid[0]) == 12 and [x for c in mid for x in c] == list(range(100)) and len(mid) == 9
    assert chunks([], workers=2) == []


def test_progress_updates_the_server_once_per_percent(monkeypatch):
    calls = []
    monkeypatch.setattr(prefect.artifacts, "update_progress_artifact", lambda id_, value: calls.append((id_, value)))
    progress = Progress("k", 4000, "cases", "predict")  # outside a flow run: no artifact yet
    assert progress.id is None
    for _ in range(10):
        progress.advance()
    assert calls == []  # nothing to update outside a run
    progress.id = "artifact"
    for _ in range(3990):
        progress.advance()
    assert [v for _, v in calls] == [float(p) for p in range(1, 101)]
    small = Progress("k", 3, "cases", "merge")
    small.id = "small"
    calls.clear()
    for _ in range(3):
        small.advance()
    assert [v for _, v in calls] == [33.0, 66.0, 100.0]
