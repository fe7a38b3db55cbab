"""replay.LogReplay: an adopted build's log, read again from its start, without the
events its record holds already. Pure; the service-level check (a real restart with a
real sqlite record) is in test_records_kubernetes.py."""

from __future__ import annotations

from r2dservice.builders.replay import LogReplay
from r2dservice.eventlog import EventLog
from r2dservice.events import Event


def line(text: str, phase: str = "building", **extra) -> Event:
    return Event(phase, text + "\n", extra)


def state(text: str) -> Event:
    """A progress event of the service's own (the re-read log never repeats it)."""
    return Event("fetching", text + "\n")


def recorded(*events: Event, max_bytes: int = 0) -> list[tuple[int, Event]]:
    log = EventLog(max_bytes)
    for event in events:
        log.append(event)
    return log.after(0)


def new_of(replay: LogReplay, reread: list[Event]) -> list[Event]:
    return [e for e in reread if not replay.seen(e)]


def test_only_what_the_record_lacks_is_new():
    logged = [line(f"step {i}") for i in range(5)]
    record = recorded(
        Event("waiting", "Build starting...\n", {"position": 0}),
        state("Build pod created"),
        state("Build pod started"),
        *logged[:3],
    )
    replay = LogReplay(record)
    assert new_of(replay, logged) == logged[3:]
    assert replay.skipped == 3 and replay.caught_up


def test_nothing_new_while_the_record_holds_it_all():
    logged = [line("a"), line("b")]
    replay = LogReplay(recorded(state("Build pod started"), *logged))
    assert new_of(replay, logged) == []
    assert not replay.caught_up
    assert not replay.seen(line("c"))  # the first line past the record
    assert replay.caught_up


def test_repeated_lines_are_matched_in_order():
    logged = [line("."), line("."), line("x"), line("."), line(".")]
    replay = LogReplay(recorded(*logged[:3]))
    assert new_of(replay, logged) == logged[3:]


def test_an_empty_record_lets_everything_through():
    logged = [line("a"), line("b")]
    assert new_of(LogReplay([]), logged) == logged


def test_a_second_restart_skips_the_first_restarts_events_too():
    logged = [line(f"step {i}") for i in range(6)]
    record = recorded(
        state("Build pod started"),
        *logged[:2],
        Event("waiting", "Following the build again after a restart of the service.\n"),
        state("Following the build running in pod x"),
        state("Build pod started"),
        *logged[2:4],
    )
    assert new_of(LogReplay(record), logged) == logged[4:]


def test_events_are_compared_as_the_record_holds_them():
    """The manager scrubs credentials before it records an event: the re-read event is
    normalized the same way before it is compared."""
    raw = line("cloning https://u:secret@git.example/r", url="https://u:secret@git.example/r")
    scrubbed = line("cloning https://git.example/r", url="https://git.example/r")

    def scrub(event: Event) -> Event:
        clean = {k: v.replace("u:secret@", "") for k, v in event.extra.items()}
        return Event(event.phase, event.message.replace("u:secret@", ""), clean)

    assert LogReplay(recorded(scrubbed), scrub).seen(raw)
    assert not LogReplay(recorded(scrubbed)).seen(raw)


def test_a_record_that_lost_its_middle():
    """A log past max_bytes keeps its head and tail (a marker stands for the middle):
    the re-read events past the head are counted off against the dropped middle, then
    matched against the tail."""
    logged = [line(f"line {i:04d} " + "x" * 40) for i in range(200)]
    record = recorded(state("Build pod started"), *logged[:150], max_bytes=4000)
    replay = LogReplay(record)
    assert replay.dropped > 0 and replay.head and replay.tail
    assert new_of(replay, logged) == logged[150:]


def test_a_record_with_a_gap_in_its_ids():
    """Events never written (a crash between writes) leave a gap in the ids: counted
    off like a dropped middle."""
    logged = [line(f"l{i}") for i in range(8)]
    record = [(1, state("Build pod started")), (2, logged[0]), (3, logged[1])]
    record += [(i + 2, logged[i]) for i in range(4, 6)]  # ids 4 and 5 missing: l2, l3
    replay = LogReplay(record)
    assert replay.dropped == 2
    assert new_of(replay, logged) == logged[6:]
