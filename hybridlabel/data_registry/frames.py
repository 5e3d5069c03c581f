"""Pure DataFrame <-> Arrow conversions for the registry tables (no files)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa

from hybridlabel.data_registry.schema import JSON_COLUMNS, columns, schema


def to_arrow(df: pd.DataFrame, table: str) -> pa.Table:
    """Cast a frame to a table's schema; missing columns become null, unknown ones are an error."""
    extra = sorted(set(df.columns) - set(columns(table)))
    if extra:
        raise ValueError(f"columns {extra} are not in the {table!r} schema (data_registry/schema.py)")
    full = df.reindex(columns=columns(table))
    full = full.astype(object).where(pd.notna(full), None) if len(full) else full
    arrays = [pa.array(full[name].tolist(), type=field.type) for name, field in zip(columns(table), schema(table))]
    return pa.Table.from_arrays(arrays, schema=schema(table))


def from_arrow(tbl: pa.Table) -> pd.DataFrame:
    """Arrow -> pandas with list columns as Python lists (so frames compare by value)."""
    as_python = [f.name for f in tbl.schema if pa.types.is_string(f.type) or pa.types.is_list(f.type)]
    rest = tbl.drop_columns(as_python)
    df = rest.to_pandas(types_mapper={pa.int32(): pd.Int32Dtype(), pa.int16(): pd.Int16Dtype()}.get)
    if not rest.num_columns:
        df = pd.DataFrame(index=pd.RangeIndex(tbl.num_rows))
    for name in as_python:
        # Arrow's own conversion: missing text is None, not NaN (pandas 3 maps strings to a
        # NaN-missing dtype), lists are Python lists (frames compare by value)
        df[name] = pd.Series(tbl.column(name).to_pylist(), dtype=object, index=df.index)
    return df[tbl.schema.names]


def empty_frame(table: str) -> pd.DataFrame:
    return from_arrow(schema(table).empty_table())


def dumps(value) -> str:
    """JSON text of a dict-like value with stable key order (keys become strings)."""
    return json.dumps(value, sort_keys=True, default=_default)


def _default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def decode(value):
    """One JSON column's value as the object it holds; None where it holds nothing."""
    return json.loads(value) if isinstance(value, str) else None


def decoded(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with its JSON columns (schema.JSON_COLUMNS) decoded: the one place the
    registry's JSON is read back."""
    out = frame.copy()
    for col in sorted(JSON_COLUMNS & set(out.columns)):
        out[col] = pd.Series([decode(v) for v in out[col]], index=out.index, dtype=object)
    return out


def records(frame: pd.DataFrame) -> list[dict]:
    """Rows as plain dicts: JSON columns decoded, missing values None."""
    return [
        {k: (None if not isinstance(v, (list, dict, np.ndarray)) and pd.isna(v) else v) for k, v in row.items()}
        for row in decoded(frame).to_dict("records")
    ]
