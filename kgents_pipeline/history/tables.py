"""What a table or view of the history is, as DuckDB reports it: its qualified name, its columns
with their types, and how many rows it holds (the Dagster assets' table metadata)."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from kgents_pipeline.errors import HistoryError


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # DuckDB's own type name: VARCHAR, TIMESTAMP WITH TIME ZONE, VARCHAR[], ...
    nullable: bool


@dataclass(frozen=True)
class TableInfo:
    name: str  # database.schema.table, as a SQL client would name it
    columns: tuple[Column, ...]
    rows: int


def describe_table(con: duckdb.DuckDBPyConnection, table: str) -> TableInfo:
    """The columns (in order) and row count of a table or view of the history."""
    found = con.execute(
        "SELECT table_catalog, table_schema FROM information_schema.tables"
        " WHERE table_name = ? AND table_schema = current_schema()",
        [table],
    ).fetchone()
    if found is None:
        raise HistoryError(f"no table or view {table!r} in the history")
    catalog, schema = found
    columns = tuple(
        Column(name, dtype, nullable == "YES")
        for name, dtype, nullable in con.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_name = ? AND table_schema = ? ORDER BY ordinal_position",
            [table, schema],
        ).fetchall()
    )
    # The name was found in the catalog above: quoting it is enough to count it safely.
    quoted = '"' + table.replace('"', '""') + '"'
    row = con.execute(f"SELECT count(*) FROM {quoted}").fetchone()
    return TableInfo(f"{catalog}.{schema}.{table}", columns, int(row[0]) if row else 0)
