"""Service logs are one JSON object per line, whatever the message holds."""

import json
import logging

from crm_common.logging import JsonFormatter


def record(message, *args, exc_info=None, **extra):
    log_record = logging.LogRecord("crm.test", logging.WARNING, __file__, 1, message, args, exc_info)
    for key, value in extra.items():
        setattr(log_record, key, value)
    return log_record


def test_a_log_line_is_json_with_time_level_logger_service_and_message():
    line = JsonFormatter(service="clients").format(record("client %s created", "Иван"))
    entry = json.loads(line)
    assert entry["level"] == "warning" and entry["logger"] == "crm.test" and entry["service"] == "clients"
    assert entry["msg"] == "client Иван created" and entry["ts"].endswith("Z")
    assert "\n" not in line


def test_extra_fields_and_the_traceback_are_kept_in_the_same_line():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(record("failed", exc_info=info, request_id="r-1", attempt=2, obj=object())))
    assert entry["request_id"] == "r-1" and entry["attempt"] == 2 and entry["obj"].startswith("<object")
    assert "ValueError: boom" in entry["exc"]
