"""Reading an uploaded CSV file for an import: what it is, its encoding and delimiter, its columns, and its
rows mapped to the fields of a client. Nothing here holds the whole file in memory: the file is read from
the (disk-spooled) upload as a stream, once to check it and count its rows, once to hand the rows over.

Problems with the file as a whole are ``ValidationError``s naming ``file``; a mapping naming a column the
file does not have names the mapping's key (``mapping.phones.1``). Problems of a single row travel with the
row (``errors``) and are reported per row by the clients service.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from crm_common.contracts.imports import ImportMappingSchema
from crm_common.errors import ValidationError
from crm_common.schemas import load_or_raise

SNIFF_BYTES = 64 * 1024
READ_BYTES = 1024 * 1024
SIGNATURES = (
    (b"PK\x03\x04", "an Excel workbook (.xlsx) or a ZIP archive"),
    (b"\xd0\xcf\x11\xe0", "an Excel 97-2003 workbook (.xls)"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"{\\rtf", "an RTF document"),
)
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
UTF8_BOM = codecs.BOM_UTF8
SAVE_AS = "save it from your spreadsheet as CSV (UTF-8 or Windows-1251, comma- or semicolon-separated)"
MULTI_VALUE = re.compile(r"[;,\n]")  # phones, emails and tags listed in one cell
_CYRILLIC_PAIR = re.compile(r"(?=([а-яё]{2}))")
# the commonest letter pairs of Russian text: a file in KOI8-R or CP866 read as Windows-1251 has almost none
COMMON_PAIRS = frozenset(
    "ст но то на ен ов ни ра во ко ал ор пр ер ан ет ол ре ль ос ва ел ог ло ли ка ри ин ла ть ит он ат ес ем ак ом "
    "ие по та не ев ий ич ви ро ди ле де ая ен ки".split()
)
OTHER_CYRILLIC = (("koi8_r", "KOI8-R"), ("cp866", "CP866 (DOS)"), ("mac_cyrillic", "Mac Cyrillic"))


def file_error(message: str) -> ValidationError:
    return ValidationError(message, fields={"file": [message]})


def _is_utf16_without_bom(head: bytes) -> bool:
    """NUL bytes, and the bytes read as UTF-16 make printable text."""
    if b"\x00" not in head:
        return False
    for codec in ("utf-16-le", "utf-16-be"):
        try:
            text = head[: len(head) // 2 * 2].decode(codec)
        except UnicodeDecodeError:
            continue
        if sum(1 for ch in text if ch.isprintable() or ch in "\r\n\t") >= 0.95 * len(text):
            return True
    return False


def check_is_text(head: bytes) -> None:
    """Refuse what is plainly not a CSV file, from its first bytes."""
    if not head.strip():
        raise file_error("The file is empty.")
    for signature, what in SIGNATURES:
        if head.startswith(signature):
            raise file_error(f"The file is {what}, not a CSV file: {SAVE_AS}.")
    if head.startswith(UTF16_BOMS) or _is_utf16_without_bom(head):
        raise file_error(f"The file is in UTF-16, which is not supported: {SAVE_AS}.")
    if b"\x00" in head:
        raise file_error(f"The file is binary, not a CSV file: {SAVE_AS}.")
    controls = sum(1 for byte in head if byte < 32 and byte not in (9, 10, 13))
    if controls > len(head) * 0.01:
        raise file_error(f"The file is binary, not a CSV file: {SAVE_AS}.")
    start = head.lstrip(UTF8_BOM).lstrip()[:1]
    if start in (b"{", b"[", b"<"):
        raise file_error(f"The file looks like JSON, XML or HTML, not a CSV file: {SAVE_AS}.")


def detect_encoding(raw: BinaryIO) -> str:
    """``utf-8-sig`` (a BOM), ``utf-8`` (every byte of the file is valid UTF-8), else ``cp1251`` when it reads
    as Russian in Windows-1251 rather than in another Cyrillic encoding. The stream is left at its start."""
    head = raw.read(SNIFF_BYTES)
    raw.seek(0)
    check_is_text(head)
    if head.startswith(UTF8_BOM):
        return "utf-8-sig"
    bad_at, multibyte = _first_invalid_utf8(raw)
    raw.seek(0)
    if bad_at is None:
        return "utf-8"
    if multibyte:
        line = _line_of(raw, bad_at)
        raise file_error(
            f"The file is UTF-8 up to line {line}, where a byte is not: it mixes encodings. Save it again as UTF-8."
        )
    sample = raw.read(READ_BYTES)
    raw.seek(0)
    _check_windows_1251(sample)
    return "cp1251"


def _first_invalid_utf8(raw: BinaryIO) -> tuple[int | None, bool]:
    """The offset of the first byte that is not UTF-8 (None if all are), and whether valid non-ASCII UTF-8
    came before it."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, multibyte = 0, False
    for chunk in iter(lambda: raw.read(READ_BYTES), b""):
        try:
            text = decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            return offset + exc.start, multibyte or not chunk[:exc.start].isascii()
        multibyte = multibyte or not text.isascii()
        offset += len(chunk)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return offset, multibyte
    return None, multibyte


def _line_of(raw: BinaryIO, offset: int) -> int:
    raw.seek(0)
    lines, read = 1, 0
    while read < offset:
        chunk = raw.read(min(READ_BYTES, offset - read))
        if not chunk:
            break
        lines += chunk.count(b"\n")
        read += len(chunk)
    raw.seek(0)
    return lines


def _russian(text: str) -> tuple[bool, bool]:
    """Whether text reads as Russian: its non-ASCII characters are mostly Cyrillic letters, and its letter
    pairs often the commonest ones; and whether there is enough Cyrillic in it to tell."""
    letters = sum(1 for ch in text if "а" <= ch.lower() <= "я" or ch in "Ёё")
    non_ascii = sum(1 for ch in text if ord(ch) > 127)
    pairs = _CYRILLIC_PAIR.findall(text.lower())
    common = sum(1 for pair in pairs if pair in COMMON_PAIRS)
    enough = non_ascii >= 20
    reads = enough and letters >= 0.8 * non_ascii and len(pairs) >= 10 and common >= 0.15 * len(pairs)
    return reads, enough


def _check_windows_1251(sample: bytes) -> None:
    """Cyrillic text in KOI8-R, CP866 or Mac Cyrillic decodes as Windows-1251 too, into gibberish: refuse it
    when another of those encodings reads as Russian and Windows-1251 does not."""
    try:
        text = sample.decode("cp1251")
    except UnicodeDecodeError as exc:
        raise file_error(f"The file is neither UTF-8 nor Windows-1251 (byte 0x{sample[exc.start]:02x}): {SAVE_AS}.") from None
    reads, enough = _russian(text)
    if reads or not enough:
        return
    for codec, name in OTHER_CYRILLIC:
        if _russian(sample.decode(codec, errors="replace"))[0]:
            raise file_error(f"The file is in {name}, which is not supported: {SAVE_AS}.")


@dataclass(frozen=True)
class CsvFile:
    """An uploaded file known to be text in ``encoding`` with columns separated by ``delimiter``."""

    raw: BinaryIO
    encoding: str
    delimiter: str
    columns: list[str]

    @classmethod
    def open(cls, raw: BinaryIO) -> CsvFile:
        encoding = detect_encoding(raw)
        header = _first_line(raw, encoding)
        raw.seek(0)
        delimiter = detect_delimiter(header)
        reader = csv.reader(_text(raw, encoding), delimiter=delimiter)
        try:
            columns = [column.strip() for column in next(reader, [])]
        except (csv.Error, UnicodeDecodeError) as exc:
            raise file_error(f"The first row cannot be read as CSV: {exc}.") from None
        finally:
            raw.seek(0)
        if not any(columns):
            raise file_error("The first row must hold the column names; it is empty.")
        return cls(raw, encoding, delimiter, columns)

    def records(self) -> Iterator[tuple[int, list[str]]]:
        """``(row number, cells)`` of every row after the header, blank rows left out; the header is row 1,
        as a spreadsheet numbers them (a row of several lines in quotes counts as one)."""
        self.raw.seek(0)
        reader = csv.reader(_text(self.raw, self.encoding), delimiter=self.delimiter)
        number = 0
        try:
            for number, cells in enumerate(reader, start=1):
                if number > 1 and any(cell.strip() for cell in cells):
                    yield number, cells
        except csv.Error as exc:
            raise file_error(f"Row {number + 1} cannot be read as CSV ({exc}): is a quote not closed?") from None
        except UnicodeDecodeError:
            raise file_error(f"Row {number + 1} is not valid {self.encoding}: the file mixes encodings.") from None

    def count_rows(self) -> int:
        """Read the whole file once: every row must be readable before anything is imported."""
        count = sum(1 for _ in self.records())
        if not count:
            raise file_error("The file has a header but no rows.")
        return count


class _Borrowed(io.RawIOBase):
    """The upload's file as seen by a text reader that must not close it (its owner does)."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._raw.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def _text(raw: BinaryIO, encoding: str) -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BufferedReader(_Borrowed(raw), READ_BYTES), encoding=encoding, newline="")


def _first_line(raw: BinaryIO, encoding: str) -> str:
    raw.seek(0)
    head = raw.read(SNIFF_BYTES).decode(encoding, errors="replace")
    return head.splitlines()[0] if head else ""


def detect_delimiter(header: str) -> str:
    """The separator of the header's columns: a semicolon (as Excel writes CSV in Russian) or a comma."""
    outside = re.sub(r'"[^"]*"', "", header)
    commas, semicolons = outside.count(","), outside.count(";")
    if not commas and not semicolons and "\t" in outside:
        raise file_error("The columns are separated by tabs; separate them with commas or semicolons.")
    return ";" if semicolons > commas else ","


@dataclass(frozen=True)
class Plan:
    """Which cell holds what: column indexes per mapping key, as the file's header names them."""

    width: int
    name: int
    kind: int | None
    phones: list[int]
    emails: list[int]
    source: int | None
    tags: list[int]
    custom_fields: dict[str, int]
    owner_email: int | None


def plan(mapping, columns: list[str]) -> Plan:
    """Check the mapping (JSON object, known keys) against the header; 422 naming each unknown column."""
    if not isinstance(mapping, dict):
        raise ValidationError("mapping must be a JSON object", fields={"mapping": ["Must be a JSON object."]})
    try:
        data = load_or_raise(ImportMappingSchema, mapping)
    except ValidationError as exc:
        raise ValidationError("invalid mapping", fields={f"mapping.{k}": v for k, v in exc.fields.items()}) from None
    errors: dict[str, list[str]] = {}
    listing = ", ".join(f"«{c}»" for c in columns if c)

    def index(column: str | None, field: str) -> int | None:
        if column is None:
            return None
        found = _find_column(column, columns)
        if found is None:
            errors[field] = [f"No column «{column}» in the file; its columns are: {listing}."]
        return found

    result = Plan(
        width=len(columns),
        name=index(data["name"], "mapping.name"),
        kind=index(data["kind"], "mapping.kind"),
        phones=[index(c, f"mapping.phones.{i}") for i, c in enumerate(data["phones"])],
        emails=[index(c, f"mapping.emails.{i}") for i, c in enumerate(data["emails"])],
        source=index(data["source"], "mapping.source"),
        tags=[index(c, f"mapping.tags.{i}") for i, c in enumerate(data["tags"])],
        custom_fields={k: index(c, f"mapping.custom_fields.{k}") for k, c in data["custom_fields"].items()},
        owner_email=index(data["owner_email"], "mapping.owner_email"),
    )
    if errors:
        raise ValidationError("the mapping names columns the file does not have", fields=errors)
    return result


def _find_column(wanted: str, columns: list[str]) -> int | None:
    """The column named exactly so, else the only one named so regardless of case and spaces."""
    wanted = wanted.strip()
    if wanted in columns:
        return columns.index(wanted)
    folded = [i for i, c in enumerate(columns) if " ".join(c.split()).casefold() == " ".join(wanted.split()).casefold()]
    return folded[0] if len(folded) == 1 else None


def map_row(cells: list[str], how: Plan, delimiter: str) -> dict:
    """A row as the clients service takes it (see ``clients/import_rules.py``), without ``owner_id``."""

    def cell(index: int | None) -> str:
        return cells[index].strip() if index is not None and index < len(cells) else ""

    def several(indexes: list[int]) -> list[list]:
        return [[i, part.strip()] for i, column in enumerate(indexes)
                for part in MULTI_VALUE.split(cell(column)) if part.strip()]

    data: dict = {"name": cell(how.name)}
    for key, index in (("kind", how.kind), ("source", how.source), ("owner_email", how.owner_email)):
        if cell(index):
            data[key] = cell(index)
    for key, indexes in (("phones", how.phones), ("emails", how.emails), ("tags", how.tags)):
        values = several(indexes)
        if values:
            data[key] = values
    custom = {key: cell(index) for key, index in how.custom_fields.items() if cell(index)}
    if custom:
        data["custom_fields"] = custom
    extra = [c for c in cells[how.width:] if c.strip()]
    if extra:
        data["errors"] = [{"field": "row", "message": (
            f"The row has {len(cells)} cells, the header {how.width} columns: is a value with a «{delimiter}» "
            "missing its quotes?")}]
    return data
