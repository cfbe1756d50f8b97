"""Node code of the batch ETL example: parse CSV, transform rows one by one, aggregate."""

from __future__ import annotations

import csv
import io
from typing import Any

from flowcraft_core import NodeContext, NodeRegistry, NonRetryableError

registry = NodeRegistry()

SAMPLE_CSV = """sku,qty,unit_price
apple,3,0.50
pear,2,0.75
apple,1,0.50
plum,10,0.20
"""


@registry.node("etl.extract")
async def extract(ctx: NodeContext) -> dict[str, Any]:
    """The data rows (header dropped) of the CSV text in `ctx.input`, or of the sample."""
    text = ctx.input if isinstance(ctx.input, str) else SAMPLE_CSV
    lines = [line for line in text.splitlines() if line.strip()]
    return {"output": lines[1:]}


@registry.node("etl.transform_row")
def transform_row(ctx: NodeContext) -> dict[str, Any]:
    """One batch item: a CSV line -> a typed record. Bad rows are not retried."""
    line: str = ctx.input
    fields = next(csv.reader(io.StringIO(line)))
    if len(fields) != 3:
        raise NonRetryableError(f"expected sku,qty,unit_price, got {line!r}")
    sku, qty_text, price_text = (field.strip() for field in fields)
    try:
        qty, price = int(qty_text), float(price_text)
    except ValueError:
        raise NonRetryableError(f"bad number in {line!r}") from None
    return {"output": {"sku": sku, "qty": qty, "unitPrice": price, "total": round(qty * price, 2)}}


@registry.node("etl.load")
async def load(ctx: NodeContext) -> dict[str, Any]:
    """Aggregate the gathered records; rows that failed hold {"error": ...} (collectErrors)."""
    records = [r for r in ctx.input if "error" not in r]
    rejected = [r["error"]["message"] for r in ctx.input if "error" in r]
    by_sku: dict[str, float] = {}
    for record in records:
        by_sku[record["sku"]] = round(by_sku.get(record["sku"], 0.0) + record["total"], 2)
    revenue = round(sum(r["total"] for r in records), 2)
    return {
        "output": {
            "loaded": len(records),
            "rejected": rejected,
            "revenue": revenue,
            "bySku": by_sku,
        }
    }
