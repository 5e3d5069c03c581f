"""The registry: identical round trips, atomic partitions, superseding."""

import json
import multiprocessing as mp
import os
import signal
import time
from datetime import datetime, timezone

import pandas as pd
import pyarrow.parquet as pq
import pytest

from hybridlabel.data_registry.frames import from_arrow, to_arrow
from hybridlabel.data_registry.schema import columns, schema
from hybridlabel.data_registry.store import PART, Registry, RegistryError


def cases_frame(n=5, round_no=0):
    return pd.DataFrame(
        [
            {
                "case_id": f"c{i:03d}",
                "round": round_no,
                "role": ["strong", "partial", "unlabeled"][i % 3],
                "annotated_classes": [1, 14] if i % 3 == 1 else [],
                "image_path": f"/data/c{i}.nii.gz",
                "image_sha256": "ab" * 32,
                "spacing": [0.8, 0.8, 2.5],
                "shape": [512, 512, 100 + i],
                "label_resampled": bool(i % 2),
                "voxel_counts": json.dumps({"0": 10, "1": i}),
                "quarantine_reason": None if i != 4 else "bad",
            }
            for i in range(n)
        ]
    )


def round_row(name="teacher", status="completed"):
    return {
        "name": name,
        "kind": "teacher",
        "status": status,
        "config_json": "{}",
        "started_at": datetime(2026, 1, 1, tzinfo=timezone.utc),
        "stage_seconds": json.dumps({"a": 1.5}),
    }


def test_schema_is_the_single_source_of_columns():
    arrow = to_arrow(cases_frame(), "cases")
    assert arrow.schema == schema("cases")
    assert list(from_arrow(arrow).columns) == columns("cases")
    with pytest.raises(ValueError, match="not in the 'cases' schema"):
        to_arrow(cases_frame().assign(surprise=1), "cases")


def test_round_written_and_read_back_is_identical(tmp_path):
    reg = Registry(tmp_path)
    cases = from_arrow(to_arrow(cases_frame(), "cases"))
    reg.commit_round(0, cases, round_row())
    back = reg.read("cases", 0)
    pd.testing.assert_frame_equal(back, cases)
    assert pq.read_table(tmp_path / "registry" / "cases" / "round-000" / PART).equals(to_arrow(cases, "cases"))
    assert reg.is_complete(0) and not reg.is_complete(1)
    assert reg.round_row(0)["name"] == "teacher"


def test_a_failed_write_leaves_no_visible_partition(tmp_path, monkeypatch):
    reg = Registry(tmp_path)

    def broken(table, path, **kw):
        with open(path, "wb") as fh:
            fh.write(b"PAR1 half")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken)
    with pytest.raises(OSError):
        reg.commit_round(1, cases_frame(), round_row())
    monkeypatch.undo()
    assert not reg.is_complete(1)
    with pytest.raises(RegistryError):
        reg.read("cases", 1)
    assert not any(p.name.startswith(".tmp") for p in (tmp_path / "registry" / "cases").iterdir())


def _writer(workdir, stop_at):
    reg = Registry(workdir)
    for i in range(10_000):
        reg.write_partition("cases", 0, cases_frame(n=200 + (i % 7)))
        if time.time() > stop_at:
            break


def test_reader_never_sees_a_half_written_partition(tmp_path):
    """A writer process rewrites a partition over and over and is SIGKILLed mid-way;
    every read during and after returns a whole table or nothing."""
    reg = Registry(tmp_path)
    reg.write_partition("cases", 0, cases_frame(n=200))
    proc = mp.get_context("fork").Process(target=_writer, args=(tmp_path, time.time() + 30))
    proc.start()
    reads = 0
    deadline = time.time() + 2.0
    while time.time() < deadline:
        try:
            frame = reg.read("cases", 0)
        except RegistryError:
            continue  # between the two renames of a replacement: absent, never partial
        assert 200 <= len(frame) <= 206 and frame["case_id"].iloc[-1].startswith("c")
        reads += 1
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert reads > 5
    leftover = reg.read("cases", 0) if (tmp_path / "registry" / "cases" / "round-000").exists() else None
    assert leftover is None or 200 <= len(leftover) <= 206


def test_supersede_moves_rounds_aside_and_keeps_them(tmp_path):
    reg = Registry(tmp_path)
    for r in range(3):
        reg.commit_round(r, cases_frame(round_no=r), round_row(name=f"r{r}"))
    assert reg.supersede_from(1) == [1, 2]
    assert list(reg.rounds()["round"]) == [0]
    old = reg.superseded_rounds()
    assert list(old["round"]) == [1, 2] and set(old["status"]) == {"superseded"}
    assert old["superseded_at"].notna().all()
    # the new round 1 is written fresh beside the kept old one
    reg.commit_round(1, cases_frame(n=2, round_no=1), round_row(name="again"))
    assert reg.round_row(1)["name"] == "again" and len(reg.read("cases", 1)) == 2


def test_status_values_are_checked(tmp_path):
    reg = Registry(tmp_path)
    reg.set_round_status(0, "running", name="teacher")
    assert reg.round_row(0)["status"] == "running" and not reg.is_complete(0)
    with pytest.raises(RegistryError, match="not one of"):
        reg.set_round_status(0, "done")


def test_whole_tables_read_with_pandas_pyarrow_and_duckdb(tmp_path):
    """A user's first query: every reader gets every round, with one integer `round`."""
    import duckdb
    import pyarrow.dataset as ds

    reg = Registry(tmp_path)
    for r in (0, 1, 12):
        reg.commit_round(r, cases_frame(3, r), round_row(f"r{r}"))
    for table in ("cases", "rounds"):
        folder = tmp_path / "registry" / table
        frames = {
            "pandas": pd.read_parquet(folder),
            "pyarrow": ds.dataset(folder, format="parquet", partitioning="hive").to_table().to_pandas(),
            "duckdb": duckdb.sql(f"select * from read_parquet('{folder}/*/*.parquet')").df(),
        }
        for reader, frame in frames.items():
            assert sorted(frame["round"].astype(int).unique()) == [0, 1, 12], (table, reader)
            assert frame["round"].dtype.kind == "i", (table, reader, frame["round"].dtype)
            assert len(frame) == (9 if table == "cases" else 3), (table, reader)


def test_a_legacy_hive_registry_is_renamed_on_the_next_write(tmp_path):
    reg = Registry(tmp_path)
    reg.commit_round(0, cases_frame(3, 0), round_row())
    for table in ("cases", "rounds"):
        os.rename(tmp_path / "registry" / table / "round-000", tmp_path / "registry" / table / "round=000")
    assert reg.is_complete(0) and len(reg.read("cases", 0)) == 3  # still read
    reg.commit_round(1, cases_frame(3, 1), round_row("s"))
    assert sorted(p.name for p in (tmp_path / "registry" / "cases").iterdir()) == ["round-000", "round-001"]


def test_a_damaged_partition_is_named_with_what_to_do(tmp_path):
    reg = Registry(tmp_path)
    reg.commit_round(0, cases_frame(3, 0), round_row())
    part = tmp_path / "registry" / "cases" / "round-000" / PART
    part.write_bytes(part.read_bytes()[:100])
    with pytest.raises(RegistryError, match=r"registry file .*round-000/part-0.parquet is damaged .*resume --round 0"):
        reg.read("cases", 0)
    assert len(reg.damaged()) == 1 and "cases" in reg.damaged()[0]
    (footer,) = reg.damaged(full=False)  # status's footer check sees a truncated file too
    assert footer.startswith(f"registry file {part} is damaged")


def test_a_partition_reads_in_part_with_the_same_values(tmp_path):
    reg = Registry(tmp_path)
    reg.commit_round(0, cases_frame(3, 0), round_row())
    whole = reg.read("cases", 0)
    some = reg.read("cases", 0, columns=["case_id", "annotated_classes", "round"])
    assert list(some.columns) == ["case_id", "annotated_classes", "round"]
    pd.testing.assert_frame_equal(some, whole[["case_id", "annotated_classes", "round"]])
    assert isinstance(some["annotated_classes"][0], list)


def test_a_kill_while_a_partition_is_replaced_keeps_the_round(tmp_path, monkeypatch):
    """The new file is written beside the old one and swapped in with one os.replace: a
    kill before the swap leaves the old data whole, and the next start removes the rest."""
    reg = Registry(tmp_path)
    reg.commit_round(0, cases_frame(), round_row())
    before = reg.read("cases", 0)

    def killed(*args):
        raise KeyboardInterrupt  # the kill arrives between writing and swapping

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        reg.write_partition("cases", 0, cases_frame(n=2))
    monkeypatch.undo()
    pd.testing.assert_frame_equal(reg.read("cases", 0), before)
    assert not list((tmp_path / "registry" / "cases" / "round-000").glob(".tmp-*"))


def test_a_vanished_round_is_flagged_and_an_old_swap_is_restored(tmp_path):
    """Registries written by older versions swapped folders with two renames; a kill
    between them left only `.old-round-NNN-*`. `status` flags the gap; the next start puts
    the partition back and removes temporary leftovers."""
    from hybridlabel.tasks.status import status_dict

    reg = Registry(tmp_path)
    for r in range(3):
        reg.commit_round(r, cases_frame(round_no=r), round_row(name=f"r{r}"))
    rounds = tmp_path / "registry" / "rounds"
    os.rename(rounds / "round-001", rounds / ".old-round-001-1a2b3c4d")
    (rounds / ".tmp-round-002-deadbeef").mkdir()
    info = status_dict(tmp_path)
    assert [r["round"] for r in info["rounds"]] == [0, 1, 2]
    assert info["rounds"][1]["status"] == "damaged" and "round 1 has no rounds row" in info["rounds"][1]["problems"][0]
    done = reg.clean_interrupted_writes()
    assert done == ["rounds/round-001 restored", "rounds/.tmp-round-002-deadbeef removed"]
    assert reg.round_gaps() == [] and [r["name"] for r in status_dict(tmp_path)["rounds"]] == ["r0", "r1", "r2"]


def test_a_byte_changed_inside_a_compressed_value_is_found(tmp_path):
    """Page checksums: the probe's `partial` -> `partiaL`, inside the file's pages."""
    reg = Registry(tmp_path)
    part = reg.write_partition("cases", 0, cases_frame()) / PART
    data = part.read_bytes()
    at = data.find(b"partial")
    assert at > 0
    part.write_bytes(data[:at] + b"partiaL" + data[at + 7 :])
    with pytest.raises(RegistryError, match="is damaged .*resume --round 0"):
        reg.read("cases", 0)


@pytest.mark.parametrize(
    "column, value, message",
    [
        ("role", "partiaL", "column role holds 'partiaL'"),
        ("round", 7, r"round column holds \[7\] in the partition of round 0"),
        ("label_sources", json.dumps({"1": "guess"}), "column label_sources holds 'guess'"),
    ],
)
def test_values_read_back_are_checked_against_the_schema(tmp_path, column, value, message):
    """A file intact to its checksums (rewritten whole) that says what the code never writes."""
    reg = Registry(tmp_path)
    part = reg.write_partition("cases", 0, cases_frame()) / PART
    frame = cases_frame()
    frame.loc[1, column] = value
    pq.write_table(to_arrow(frame, "cases"), part)
    with pytest.raises(RegistryError, match=message):
        reg.read("cases", 0)
