"""Uploading CSV files to POST /imports as a client of the API does (multipart/form-data)."""

import csv
import io
import json

from crm_common.testing.fixtures import poll
from crm_common.testing.system import Api

MAPPING = {"name": "ФИО", "phones": ["Телефон", "Моб."], "emails": ["Email"], "tags": "Метки",
           "custom_fields": {"company": "Компания"}, "owner_email": "Менеджер"}
HEADER = ["ФИО", "Телефон", "Моб.", "Email", "Метки", "Компания", "Менеджер"]


def csv_file(rows: list[list[str]], delimiter: str = ",", encoding: str = "utf-8", header=HEADER) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return text.getvalue().encode(encoding)


def send(api: Api, content: bytes, mapping=MAPPING, filename: str = "база.csv", **fields):
    form = {"mapping": json.dumps(mapping, ensure_ascii=False) if not isinstance(mapping, str) else mapping,
            **{k: str(v).lower() if isinstance(v, bool) else v for k, v in fields.items()}}
    return api.post("/imports", files={"file": (filename, content, "text/csv")}, data=form)


def finished(api: Api, import_id: str) -> dict:
    def check():
        state = api.ok("GET", f"/imports/{import_id}")
        return state if state["status"] in ("done", "failed") else None

    return poll(check, timeout=60, interval=0.2, message=f"import {import_id}")


def run_import(api: Api, content: bytes, **options) -> dict:
    response = send(api, content, **options)
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] in ("queued", "running", "done") and response.headers["Location"].endswith(accepted["id"])
    return finished(api, accepted["id"])
