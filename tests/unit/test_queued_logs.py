"""The web process's log lines: handed to a writer thread, still complete and in order, each with
the request id of the thread that logged it."""

from __future__ import annotations

import json
import logging
import threading

from core.logs import configure_logging, request_id_var


def test_queued_lines_are_written_in_order_with_their_own_request_ids(capsys) -> None:
    configure_logging("json", "INFO", queued=True)
    try:
        log = logging.getLogger("web.request")

        def request(number: int) -> None:
            request_id_var.set(f"request-{number:04d}")
            log.info("GET /%d 200", number)

        threads = [threading.Thread(target=request, args=(n,)) for n in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception("failed")
    finally:
        configure_logging("json", "INFO")  # replaces the queued handler: what waits is written
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    requests = {line["message"]: line["request_id"] for line in lines[:-1]}
    assert requests == {f"GET /{n} 200": f"request-{n:04d}" for n in range(20)}
    assert lines[-1]["message"] == "failed" and "RuntimeError: boom" in lines[-1]["exc_info"]
