"""The privacy helper looks at every payload of a history, those without `data` too: a check
that only read payloads with data would miss a payload kind the codec left in clear."""

from __future__ import annotations

import json
from typing import Any

from google.protobuf.json_format import MessageToDict
from temporalio.api.common.v1 import Payload, Payloads, SearchAttributes
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import (
    ActivityTaskCompletedEventAttributes,
    History,
    HistoryEvent,
    UpsertWorkflowSearchAttributesEventAttributes,
    WorkflowExecutionStartedEventAttributes,
)
from temporalio.converter import DataConverter

from tests.history_text import TEST_CODEC, all_encrypted, payload_texts, payloads


def _history(result: Payload, *, search_attribute: Payload) -> Any:
    """A history as `fetch_history().to_json()` gives it, parsed: an encrypted input, an
    activity result, and a search attribute (those stay in clear by design)."""
    converter = DataConverter.default.payload_converter
    [started_input] = converter.to_payloads(["case input"])
    history = History(
        events=[
            HistoryEvent(
                event_id=1,
                event_type=EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
                workflow_execution_started_event_attributes=WorkflowExecutionStartedEventAttributes(
                    input=Payloads(payloads=[TEST_CODEC.encrypt(started_input)])
                ),
            ),
            HistoryEvent(
                event_id=2,
                event_type=EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
                activity_task_completed_event_attributes=ActivityTaskCompletedEventAttributes(
                    result=Payloads(payloads=[result])
                ),
            ),
            HistoryEvent(
                event_id=3,
                event_type=EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
                upsert_workflow_search_attributes_event_attributes=(
                    UpsertWorkflowSearchAttributesEventAttributes(
                        search_attributes=SearchAttributes(
                            indexed_fields={"RecoveryNextDeadline": search_attribute}
                        )
                    )
                ),
            ),
        ]
    )
    return json.loads(json.dumps(MessageToDict(history)))


def test_a_payload_without_data_is_seen_and_one_left_in_clear_is_caught():
    [none] = DataConverter.default.payload_converter.to_payloads([None])
    assert none.metadata["encoding"] == b"binary/null" and none.data == b""
    cleared_attribute = Payload(metadata={"type": b"Datetime", "encoding": b"binary/null"})

    in_clear = _history(none, search_attribute=cleared_attribute)
    sealed = _history(TEST_CODEC.encrypt(none), search_attribute=cleared_attribute)

    # In the JSON form that payload is only metadata: there is no `data` to find it by.
    [result] = in_clear["events"][1]["activityTaskCompletedEventAttributes"]["result"]["payloads"]
    assert set(result) == {"metadata"}
    assert len(payloads(in_clear)) == 2  # the input and the result, not the search attribute
    assert [p.metadata["encoding"] for p in payloads(in_clear)] == [
        b"binary/encrypted",
        b"binary/null",
    ]
    assert not all_encrypted(in_clear)
    assert all_encrypted(sealed)
    assert payload_texts(sealed, TEST_CODEC) == ['"case input"', ""]
