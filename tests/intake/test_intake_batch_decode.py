"""Small bodies decoded by the group commit's writer (intake/batch.py `Prepare`): the same answers as
decoding in a thread of its own. Queued behind a held batch, valid requests are stored and answered 202, invalid
ones get their own 4xx and leave nothing; a body over `batch_decode_max_bytes` takes the parse threads."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from intake.app import create_app
from intake.config import IntakeConfig
from intake.outbox import Outbox
from tests.intake.test_intake_group_commit import BatchingIngestor, _body, _post_all, _queued


def _invalid(kind: int) -> bytes:
    if kind == 0:
        return b'{"version": "4", "alerts": [ '  # not JSON: 400
    doc = json.loads(_body(0))
    doc["alerts"][0]["labels"] = "not an object"  # the wrong shape: 422
    return json.dumps(doc).encode()


def test_a_held_batch_of_small_bodies_answers_each_its_own(
    intake_config: IntakeConfig, store: Any, outbox: Outbox, serve: Any
) -> None:
    ingestor = BatchingIngestor(store, outbox, intake_config)
    app = create_app(intake_config, ingestor)
    bodies = [_body(i) for i in range(40)] + [_invalid(0), _invalid(1)] + [_body(i) for i in range(40, 48)]
    with serve(app) as url:
        ingestor.release.clear()  # hold the first batch so that the others queue behind it
        sending = asyncio.new_event_loop()
        try:
            task = sending.create_task(_post_all(url, bodies))
            sending.run_until_complete(_queued(app, ingestor, 20))  # the first batch held, 20+ behind it
            ingestor.release.set()
            answers = sending.run_until_complete(task)
        finally:
            sending.close()
    codes = [a.status_code for a in answers]
    assert codes == [202] * 40 + [400, 422] + [202] * 8, [(a.status_code, a.text) for a in answers]
    assert "error" in answers[40].json() and "error" in answers[41].json()
    assert len(store.list_alerts()) == 48 and outbox.depth() == 48
    assert store.count_rows()["raw_payloads"] == 48
    assert max(app.state.committer.batches) > 1


def test_a_body_over_the_threshold_is_decoded_in_a_parse_thread(
    intake_config: IntakeConfig, store: Any, outbox: Outbox, serve: Any
) -> None:
    config = intake_config.model_copy(update={"batch_decode_max_bytes": 0})
    ingestor = BatchingIngestor(store, outbox, config)
    app = create_app(config, ingestor)
    with serve(app) as url:
        sending = asyncio.new_event_loop()
        try:
            answers = sending.run_until_complete(_post_all(url, [_body(1), _invalid(1)]))
        finally:
            sending.close()
    assert [a.status_code for a in answers] == [202, 422]
    assert app.state.committer.batches == [1]  # the invalid one never reached the writer
    assert len(store.list_alerts()) == 1
