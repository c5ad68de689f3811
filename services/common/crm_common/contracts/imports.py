"""The import contract: the CSV upload's form and column mapping, the clients service's import RPCs, and
what ``GET /imports/{id}`` answers. The gateway reads the file; the clients service applies the rules."""

from __future__ import annotations

from marshmallow import Schema, fields, pre_load, validate

from crm_common.contracts.clients import MAX_CUSTOM_FIELDS, MAX_EMAILS, MAX_PHONES
from crm_common.schemas import (
    AwareDateTime,
    Id,
    PageQuerySchema,
    QueryInteger,
    StrictBoolean,
    StrictInteger,
    StrictSchema,
    Text,
)

ON_DUPLICATE = ("skip", "merge", "create_anyway")
IMPORT_STATUSES = ("uploading", "queued", "running", "done", "failed")
ROWS_PER_CALL = 1000  # rows the gateway sends in one add_import_rows call
MAX_COLUMN = 200  # characters of a column name


def _columns(max_items: int):
    return fields.List(Text(MAX_COLUMN), validate=validate.Length(max=max_items), load_default=list)


class ImportMappingSchema(StrictSchema):
    """Which column of the file holds what: ``{"name": "ФИО", "phones": ["Телефон", "Моб."], ...}``.
    A column given for ``phones``, ``emails`` or ``tags`` may hold several values separated by ``,`` or ``;``."""

    name = Text(MAX_COLUMN, required=True, metadata={"description": "the column of the client's name"})
    kind = Text(MAX_COLUMN, load_default=None, metadata={"description": "a column of person/company; person if absent"})
    phones = _columns(MAX_PHONES)
    emails = _columns(MAX_EMAILS)
    source = Text(MAX_COLUMN, load_default=None)
    tags = _columns(MAX_PHONES)
    custom_fields = fields.Dict(
        keys=Text(64), values=Text(MAX_COLUMN), load_default=dict,
        validate=validate.Length(max=MAX_CUSTOM_FIELDS, error="At most {max} custom fields."),
        metadata={"description": "custom field name → column"},
    )
    owner_email = Text(MAX_COLUMN, load_default=None,
                       metadata={"description": "a column of owners' emails (users of the branch); round robin if empty"})

    @pre_load
    def _one_column_as_a_list(self, data, **kwargs):
        if isinstance(data, dict):
            return {k: [v] if k in ("phones", "emails", "tags") and isinstance(v, str) else v for k, v in data.items()}
        return data


class ImportFormSchema(StrictSchema):
    """The multipart form of ``POST /imports`` (the parts ``file`` and ``mapping`` are read by the route)."""

    file = fields.Raw(required=True, metadata={
        "type": "string", "format": "binary", "description": "the CSV: UTF-8 or Windows-1251, comma or semicolon",
        "x-server-rule": "a CSV file with a header row, up to CRM_IMPORT_MAX_MB (422 not a CSV, 413 too large)"})
    mapping = fields.String(required=True, metadata={
        "description": "JSON: the column mapping (ImportMapping)",
        "x-server-rule": "a JSON object as ImportMapping describes, naming columns of the file's header (422)"})
    on_duplicate = fields.String(load_default="skip", validate=validate.OneOf(ON_DUPLICATE))
    dry_run = fields.Boolean(load_default=False, truthy={"true", "True", "TRUE", "1", "yes", "on"},
                             falsy={"false", "False", "FALSE", "0", "no", "off"})
    branch_id = Id(allow_none=True, load_default=None, metadata={
        "description": "an administrator names the branch",
        "x-server-rule": "an existing branch (422); required for an administrator; a head imports into their own"})


class ImportCreateSchema(StrictSchema):
    """``clients.create_import``: an import of ``total`` rows, in ``uploading`` until started."""

    file_name = Text(255, allow_none=True, load_default=None)
    on_duplicate = fields.String(load_default="skip", validate=validate.OneOf(ON_DUPLICATE))
    dry_run = StrictBoolean(load_default=False)
    mapping = fields.Nested(ImportMappingSchema, required=True)
    total = StrictInteger(required=True, validate=validate.Range(min=1))
    branch_id = Id(allow_none=True, load_default=None)


class ImportQuerySchema(PageQuerySchema):
    status = fields.String(validate=validate.OneOf(IMPORT_STATUSES))
    branch_id = Id()


class ImportErrorsQuerySchema(StrictSchema):
    after = QueryInteger(load_default=0, validate=validate.Range(min=0))
    limit = QueryInteger(load_default=1000, validate=validate.Range(min=1, max=10000))


class ProgressSchema(Schema):
    rows_read = fields.Integer(metadata={"description": "rows whose outcome is decided and committed"})
    total = fields.Integer(metadata={"description": "data rows in the file"})


class ImportErrorSchema(Schema):
    row = fields.Integer(metadata={"description": "the row in the file (the header is row 1)"})
    field = fields.String(metadata={"description": "the mapping key: name, phones.1, custom_fields.inn, owner_email..."})
    column = fields.String(allow_none=True, metadata={"description": "the file's column"})
    message = fields.String()


class ImportSchema(Schema):
    id = fields.String()
    status = fields.String(metadata={"description": "uploading | queued | running | done | failed"})
    dry_run = fields.Boolean()
    on_duplicate = fields.String()
    branch_id = fields.String()
    file_name = fields.String(allow_none=True)
    created_by = fields.String()
    progress = fields.Nested(ProgressSchema)
    rows_received = fields.Integer(metadata={"description": "rows the gateway has handed over so far"})
    created = fields.Integer()
    merged = fields.Integer(metadata={"description": "rows merged into an existing client"})
    skipped = fields.Integer(metadata={"description": "duplicate rows left out"})
    rows_with_errors = fields.Integer()
    errors_count = fields.Integer(metadata={"description": "error entries (a row may have several)"})
    errors = fields.List(fields.Nested(ImportErrorSchema), metadata={"description": "the first 100"})
    error = fields.String(allow_none=True, metadata={"description": "why the import failed as a whole"})
    mapping = fields.Dict()
    created_at = AwareDateTime()
    started_at = AwareDateTime(allow_none=True)
    finished_at = AwareDateTime(allow_none=True)
