import json

import pytest

from r2dservice.events import Event, encode_sse, failed, parse_repo2docker_line


def test_event_dict_always_has_phase_and_message():
    d = Event("building", "step 1\n", {"extra": 1}).to_dict()
    assert d == {"phase": "building", "message": "step 1\n", "extra": 1}


def test_unknown_phase_rejected():
    with pytest.raises(ValueError):
        Event("exploding")


def test_a_build_log_line_cannot_claim_a_launch():
    event, _ = parse_repo2docker_line('{"phase": "launching", "message": "x"}', "building")
    assert event.phase == "unknown"


def test_sse_frame_has_id_and_single_data_line():
    frame = encode_sse(Event("building", "two\nlines\n"), 7).decode()
    assert frame.startswith("id: 7\ndata: ")
    assert frame.endswith("\n\n")
    data_line = frame.split("\n")[1]
    assert json.loads(data_line[len("data: ") :])["message"] == "two\nlines\n"
    assert frame.count("\n") == 3


def test_failed_message_ends_with_newline():
    assert failed("nope").message == "nope\n"
    assert failed("nope").terminal


@pytest.mark.parametrize(
    "line, current, phase, is_error",
    [
        ('{"message": "Picked Git content provider.\\n"}', "fetching", "fetching", False),
        ('{"phase": "building", "message": "Step 1/3"}', "fetching", "building", False),
        ('{"phase": "failed", "message": "Error during build"}', "building", "building", True),
        ('{"phase": "running", "message": "x"}', "building", "unknown", False),
        ('{"phase": "ready", "message": "x"}', "pushing", "pushing", False),
        ("not json at all", "building", "unknown", False),
        ("[1, 2]", "building", "unknown", False),
    ],
)
def test_parse_repo2docker_line(line, current, phase, is_error):
    event, err = parse_repo2docker_line(line, current)
    assert event.phase == phase
    assert err is is_error
    assert not event.terminal


def test_parse_keeps_extra_fields():
    event, _ = parse_repo2docker_line(
        '{"phase": "building", "message": "m", "exc_info": "tb"}', "x"
    )
    assert event.extra == {"exc_info": "tb"}
