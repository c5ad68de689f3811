"""Reading an uploaded CSV file: what it is, its encoding and delimiter, the mapping against its header, its rows."""

import io

import pytest

from crm_common.errors import ValidationError
from gateway.csvimport import CsvFile, map_row, plan

HEADER = "ФИО;Телефон;Моб.;Email;Метки"
ROWS = ["Иванов Иван Иванович;8 916 123-45-67;;ivan@mail.ru;vip", "Петрова Ольга Сергеевна;+7 495 000-00-00;;;"]
# enough Russian for the encoding check to tell Windows-1251 from other Cyrillic encodings
NAMES = ["Смирнова Ольга Петровна", "Кузнецов Дмитрий Иванович", "Попова Анна Сергеевна", "Васильев Сергей Петрович",
         "Соколова Мария Андреевна", "Михайлов Алексей Николаевич"]
MAPPING = {"name": "ФИО", "phones": ["Телефон", "Моб."], "emails": "Email", "tags": "Метки"}


def csv_bytes(text: str, encoding: str = "utf-8") -> io.BytesIO:
    return io.BytesIO(text.encode(encoding))


def russian_file(delimiter: str = ";") -> str:
    lines = [HEADER, *ROWS, *(f"{name};8 916 000-00-0{i};;;" for i, name in enumerate(NAMES))]
    return "\n".join(line.replace(";", delimiter) for line in lines) + "\n"


def file_error(raw: bytes) -> str:
    with pytest.raises(ValidationError) as error:
        CsvFile.open(io.BytesIO(raw)).count_rows()
    assert list(error.value.fields) == ["file"]
    return error.value.fields["file"][0]


@pytest.mark.parametrize(
    ("encoding", "detected"), [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("cp1251", "cp1251")]
)
def test_utf8_with_or_without_a_bom_and_windows_1251_are_recognised(encoding, detected):
    opened = CsvFile.open(csv_bytes(russian_file(), encoding))

    assert opened.encoding == detected
    assert opened.columns == ["ФИО", "Телефон", "Моб.", "Email", "Метки"]
    assert opened.count_rows() == 8


@pytest.mark.parametrize(("encoding", "name"), [("koi8_r", "KOI8-R"), ("cp866", "CP866")])
def test_another_cyrillic_encoding_is_refused_by_name_instead_of_imported_as_gibberish(encoding, name):
    assert name in file_error(russian_file().encode(encoding))


def test_a_utf8_file_with_a_stray_byte_is_refused_naming_the_line():
    raw = russian_file().encode() + "Сидоров;8 916 111-11-11;;;\n".encode("cp1251")

    assert "line 10" in file_error(raw)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"", "empty"),
        (b"  \n\n", "empty"),
        (b"PK\x03\x04\x14\x00\x06\x00", "Excel workbook (.xlsx)"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "Excel 97-2003"),
        (b"%PDF-1.7\n", "PDF"),
        (b"\x89PNG\r\n\x1a\n", "PNG"),
        ("ФИО;Телефон\nИван;1\n".encode("utf-16"), "UTF-16"),
        ("ФИО;Телефон\nИван;1\n".encode("utf-16-le"), "UTF-16"),
        (b"name,phone\n\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0e\x0f\x10", "binary"),
        (b'{"name": "Ivan"}', "JSON, XML or HTML"),
        (b"<html><body>table</body></html>", "JSON, XML or HTML"),
        ("ФИО;Телефон\n".encode(), "no rows"),
        ("ФИО;Телефон\n\n\n".encode(), "no rows"),
        (b"\n\nname,phone\nIvan,1\n", "column names"),
        (b"name\tphone\nIvan\t1\n", "tabs"),
        (b'name,phone\nIvan,"1\n' + b"x" * 140_000 + b"\n", "Row 2"),
    ],
)
def test_what_is_not_a_readable_csv_file_is_refused_naming_the_file(raw, fragment):
    assert fragment in file_error(raw)


@pytest.mark.parametrize(
    ("header", "delimiter"),
    [("a,b,c", ","), ("a;b;c", ";"), ('"a,1";b;c', ";"), ('"a;1",b,c', ","), ("a", ","), ("a;b,c;d", ";")],
)
def test_the_delimiter_is_the_one_separating_the_header(header, delimiter):
    assert CsvFile.open(csv_bytes(f"{header}\n1\n")).delimiter == delimiter


def test_rows_are_numbered_as_a_spreadsheet_shows_the_file_blank_ones_left_out():
    text = 'name,note\n"Иван","две\nстроки"\n\n,\nПётр,x\n'
    opened = CsvFile.open(csv_bytes(text))

    # a quoted cell's line break stays in its row: row 3 is blank, row 4 has empty cells only
    assert list(opened.records()) == [(2, ["Иван", "две\nстроки"]), (5, ["Пётр", "x"])]


def test_the_file_stays_open_after_being_read_for_its_owner_to_close():
    raw = csv_bytes(russian_file())
    opened = CsvFile.open(raw)
    assert opened.count_rows() == opened.count_rows() == 8

    assert not raw.closed


def test_a_mapping_naming_columns_the_file_lacks_is_refused_naming_each_key():
    columns = ["ФИО", "Телефон", "Email"]
    with pytest.raises(ValidationError) as error:
        plan({"name": "ФИО", "phones": ["Телефон", "Моб."], "custom_fields": {"inn": "ИНН"}, "owner_email": "Менеджер"},
             columns)

    assert set(error.value.fields) == {"mapping.phones.1", "mapping.custom_fields.inn", "mapping.owner_email"}
    assert error.value.fields["mapping.phones.1"] == ["No column «Моб.» in the file; its columns are: «ФИО», «Телефон», «Email»."]


@pytest.mark.parametrize(
    ("mapping", "field"),
    [
        ({"phones": ["Телефон"]}, "mapping.name"),
        ({"name": "ФИО", "surname": "Фамилия"}, "mapping.surname"),
        ({"name": "ФИО", "phones": [1]}, "mapping.phones.0"),
        ({"name": "ФИО", "custom_fields": ["inn"]}, "mapping.custom_fields"),
        ({"name": "ФИО", "custom_fields": {f"f{i}": "ФИО" for i in range(51)}}, "mapping.custom_fields"),
        (["ФИО"], "mapping"),
    ],
)
def test_a_malformed_mapping_is_refused_naming_the_key(mapping, field):
    with pytest.raises(ValidationError) as error:
        plan(mapping, ["ФИО", "Телефон"])

    assert field in error.value.fields


def test_a_column_is_found_whatever_its_case_and_spacing_when_only_one_matches():
    how = plan({"name": " фио ", "phones": "ТЕЛЕФОН"}, ["ФИО", "Телефон"])

    assert (how.name, how.phones) == (0, [1])
    with pytest.raises(ValidationError):
        plan({"name": "имя"}, ["Имя", "ИМЯ"])


def test_a_row_is_mapped_with_several_values_of_a_cell_split_and_empty_cells_left_out():
    how = plan({**MAPPING, "custom_fields": {"inn": "ИНН"}, "owner_email": "Менеджер", "source": "Источник"},
               ["ФИО", "Телефон", "Моб.", "Email", "Метки", "ИНН", "Менеджер", "Источник"])

    data = map_row(["Иван", "8 916 123-45-67, 8 916 765-43-21", "", "a@x.ru", "vip; опт", "7701", "olga@firm.ru", ""],
                   how, ";")

    assert data == {
        "name": "Иван",
        "phones": [[0, "8 916 123-45-67"], [0, "8 916 765-43-21"]],
        "emails": [[0, "a@x.ru"]],
        "tags": [[0, "vip"], [0, "опт"]],
        "custom_fields": {"inn": "7701"},
        "owner_email": "olga@firm.ru",
    }


def test_a_row_with_more_cells_than_the_header_carries_an_error_instead_of_shifted_values():
    how = plan({"name": "name", "phones": "phone"}, ["name", "phone"])

    data = map_row(["Иванов", " Иван", "8 916 123-45-67"], how, ",")

    assert data["errors"] == [{"field": "row", "message": "The row has 3 cells, the header 2 columns: is a value with "
                                                          "a «,» missing its quotes?"}]
    assert "errors" not in map_row(["Иван", "1", ""], how, ",")  # a trailing empty cell is harmless
