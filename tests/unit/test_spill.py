"""The spill store on a real directory: atomic, ordered, self-describing, bounded."""

from __future__ import annotations

import json
from pathlib import Path

from lambda_logs_http.delivery.batching import Batch
from lambda_logs_http.delivery.spill import FORMAT, SpillStore


def payload(n: int) -> bytes:
    return Batch(0.0, [json.dumps({"n": n})]).payload()


def test_write_read_remove_in_order(tmp_path: Path) -> None:
    store = SpillStore(str(tmp_path), 1 << 20)
    assert store.open() == 0
    for n in range(3):
        assert store.write(f"b-{n}", 1, payload(n)) == []
    assert len(store) == 3 and store.records == 3
    for n in range(3):
        head = store.read_oldest()
        assert head is not None and head.batch_id == f"b-{n}" and len(head) == 1
        assert json.loads(head.body("t"))["logs"] == [{"n": n}]
        store.remove(head.path)
    assert store.read_oldest() is None and list(tmp_path.iterdir()) == []


def test_files_are_self_describing_and_found_by_a_new_process(tmp_path: Path) -> None:
    SpillStore(str(tmp_path), 1 << 20).open()
    first = SpillStore(str(tmp_path), 1 << 20)
    first.open()
    first.write("b-1", 1, payload(1))
    (path,) = tmp_path.glob("*.batch")
    header = json.loads(path.read_bytes().split(b"\n", 1)[0])
    assert header["format"] == FORMAT and header["batch_id"] == "b-1" and header["records"] == 1
    second = SpillStore(str(tmp_path), 1 << 20)
    assert second.open() == 1 and second.records == 1
    head = second.read_oldest()
    assert head is not None and head.batch_id == "b-1"


def test_cap_drops_the_oldest(tmp_path: Path) -> None:
    store = SpillStore(str(tmp_path), 300)
    store.open()
    dropped = [store.write(f"b-{n}", 2, payload(n)) for n in range(5)]
    assert any(dropped) and store.bytes <= 300
    assert sum(map(sum, dropped)) + store.records == 10


def test_unreadable_files_are_removed(tmp_path: Path) -> None:
    (tmp_path / "00000000000000000001-x.batch").write_bytes(b"not a header\n")
    (tmp_path / "leftover.batch.tmp").write_bytes(b"half")
    store = SpillStore(str(tmp_path), 1 << 20)
    assert store.open() == 0
    assert not (tmp_path / "00000000000000000001-x.batch").exists()


def test_an_unusable_directory_disables_spilling(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    store = SpillStore(str(blocker / "sub"), 1 << 20)
    assert store.open() == 0 and not store.can_hold(1)
