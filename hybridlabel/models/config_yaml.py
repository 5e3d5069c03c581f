"""Render a PipelineConfig as YAML with each field's description as a comment.

The descriptions live once, on the pydantic fields; this walks the model so the
commented file written by `hybridlabel init` can never drift from the schema.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel

from hybridlabel.models.config import PipelineConfig


def _scalar(value) -> str:
    if isinstance(value, Path):
        value = str(value)
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _lines(model: BaseModel, indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if field.description:
            out.append(f"{pad}# {field.description}")
        if isinstance(value, BaseModel):
            out.append(f"{pad}{name}:")
            out.extend(_lines(value, indent + 2))
        elif isinstance(value, list) and value and isinstance(value[0], BaseModel):
            out.append(f"{pad}{name}:")
            for item in value:
                sub = _lines(item, indent + 4)
                first = next(i for i, s in enumerate(sub) if not s.lstrip().startswith("#"))
                sub[first] = f"{pad}  - " + sub[first].lstrip()
                out.extend(sub)
        elif isinstance(value, dict):
            out.append(f"{pad}{name}:")
            out.extend(f"{pad}  {k}: {_scalar(v)}" for k, v in value.items())
        else:
            out.append(f"{pad}{name}: {_scalar(value)}")
    return out


def render_config_yaml(config: PipelineConfig | None = None) -> str:
    config = config or PipelineConfig()
    header = [
        "# hybridlabel pipeline config (see README.md and docs/ARCHITECTURE.md). Every field has its default;",
        "# delete what you do not change. Relative paths are relative to this file.",
    ]
    return "\n".join(header + _lines(config, 0)) + "\n"
