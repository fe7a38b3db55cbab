"""The bounded event log: ids never change, the middle goes, a marker says so."""

import pytest

from r2dservice.eventlog import EVENT_OVERHEAD, EventLog
from r2dservice.events import Event


def fill(log, n, size=100, phase="building"):
    return [log.append(Event(phase, f"{i:06d}" + "x" * (size - 7) + "\n")) for i in range(n)]


def test_unbounded_log_keeps_everything():
    log = EventLog(0)
    ids = fill(log, 1000)
    assert ids == list(range(1, 1001))
    assert [i for i, _ in log.after(0)] == ids
    assert [i for i, _ in log.after(998)] == [999, 1000] and log.after(1000) == []
    assert log.dropped == 0 and len(log) == 1000


def test_ids_are_stable_when_the_middle_is_dropped():
    log = EventLog(30 * (100 + EVENT_OVERHEAD))
    ids = fill(log, 500)
    assert ids == list(range(1, 501)) and log.last_id == 500
    kept = log.after(0)
    kept_ids = [i for i, _ in kept]
    assert kept_ids == sorted(kept_ids) and kept_ids[-1] == 500
    assert log.dropped > 400
    markers = [e for _, e in kept if "truncated" in e.extra]
    assert len(markers) == 1
    assert markers[0].extra["truncated"]["events"] == log.dropped
    assert f"{log.dropped} log lines" in markers[0].message
    # head kept from the start, tail to the end
    assert kept[0][1].message.startswith("000000")
    assert kept[-1][1].message.startswith("000499")
    # the budget holds
    assert sum(len(e.message) + EVENT_OVERHEAD for _, e in kept) <= log.max_bytes + 1000


@pytest.mark.parametrize("after", [0, 3, 7, 8, 100, 300, 480, 499, 500, 600])
def test_resume_from_anywhere(after):
    log = EventLog(30 * (100 + EVENT_OVERHEAD))
    fill(log, 500)
    got = log.after(after)
    full = log.after(0)
    expected = [(i, e) for i, e in full if i > after]
    gap_end = [i for i, e in full if "truncated" in e.extra][0]
    # Whatever the position: ids only grow, nothing kept after `after` is missing,
    # and a position inside the dropped middle gets the marker first.
    assert [i for i, _ in got] == sorted(i for i, _ in got)
    assert all(i > after for i, _ in got) or (got and "truncated" in got[0][1].extra)
    kept_after = [(i, e) for i, e in expected if "truncated" not in e.extra]
    assert all(pair in got for pair in kept_after)
    head_end = max(i for i, e in full if i < gap_end)
    if head_end <= after < gap_end:
        assert "truncated" in got[0][1].extra
    if after >= log.last_id:
        assert got == []


def test_one_huge_event_is_kept_whole_as_the_newest():
    log = EventLog(2000)
    fill(log, 5)
    log.append(Event("building", "y" * 10_000))
    assert log.last.message == "y" * 10_000
    assert log.after(log.last_id - 1)[-1][1].message == "y" * 10_000


def test_text_is_every_kept_message_with_the_marker():
    log = EventLog(20 * (100 + EVENT_OVERHEAD))
    fill(log, 200)
    text = log.text()
    assert text.startswith("000000") and text.rstrip().endswith("x") and "were dropped here" in text


@pytest.mark.parametrize("max_bytes", [0, 30 * (100 + EVENT_OVERHEAD)])
def test_restore_gives_back_the_same_log(max_bytes):
    log = EventLog(max_bytes)
    fill(log, 500)
    restored = EventLog.restore(log.after(0), max_bytes)
    assert restored.last_id == log.last_id and restored.dropped == log.dropped
    for after in (0, 5, 100, 250, 499, 500):
        assert [(i, e.message) for i, e in restored.after(after)] == [
            (i, e.message) for i, e in log.after(after)
        ]


def test_restore_of_a_log_with_a_hole_marks_it():
    log = EventLog(0)
    fill(log, 10)
    pairs = [p for p in log.after(0) if not 4 <= p[0] <= 6]
    restored = EventLog.restore(pairs)
    assert restored.last_id == 10 and restored.dropped == 3
    got = restored.after(2)
    assert [i for i, _ in got] == [3, 6, 7, 8, 9, 10] and "truncated" in got[1][1].extra
