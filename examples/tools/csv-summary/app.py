"""`csv-summary`: profiles a CSV table, column by column, as JSON.

An Errand example tool in Python, built with componentize-py (`errand build
examples/tools/csv-summary`). For each column it infers a type (integer,
number, boolean, date or text) and reports what an agent needs before it
uses the data: missing cells, distinct values, the range, mean, median and
standard deviation of numbers, and the most common values of the rest.

Parameters:
- `delimiter`: one character, or `tab` (default: the one of `,` `;` tab
  `|` that occurs most often in the header line);
- `top`: how many of the most common values to list per column, 0 to 20
  (default 3);
- `header`: `yes` (default) if the first row names the columns, `no` to
  name them `column_1`, `column_2`…

The output is deterministic: floats are rounded to 6 significant digits,
and ties between equally common values are broken by the value.
"""

import csv
import io
import json
import math
import re
import statistics
from collections import Counter

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host, types

MAX_COLUMNS = 1000
DELIMITERS = {",": ",", ";": ";", "\t": "\t", "tab": "\t", "|": "|"}
INTEGER = re.compile(r"[+-]?\d+")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
BOOLEANS = {"true": True, "false": False, "yes": True, "no": False}


def invalid(message: str) -> Err:
    return Err(types.ToolError_InvalidInput(message))


def param(ctx: types.RequestContext, key: str) -> str | None:
    return next((p.value for p in ctx.params if p.key == key), None)


def sig(x: float) -> float | int:
    """`x` to 6 significant digits; integral values as integers."""
    if x == 0 or not math.isfinite(x):
        return 0 if x == 0 else x
    r = round(x, 5 - int(math.floor(math.log10(abs(x)))))
    return int(r) if r == int(r) and abs(r) < 2**53 else r


def sniff_delimiter(text: str) -> str:
    header = text.split("\n", 1)[0]
    counts = [(header.count(d), -i, d) for i, d in enumerate([",", ";", "\t", "|"])]
    best = max(counts)
    return best[2] if best[0] > 0 else ","


def infer(values: list[str]) -> str:
    """The narrowest type every non-empty value fits."""
    if all(INTEGER.fullmatch(v) for v in values):
        return "integer"
    if all(is_number(v) for v in values):
        return "number"
    if all(v.lower() in BOOLEANS for v in values):
        return "boolean"
    if all(DATE.fullmatch(v) for v in values):
        return "date"
    return "text"


def is_number(v: str) -> bool:
    try:
        return math.isfinite(float(v))
    except ValueError:
        return False


def most_common(values: list[str], top: int) -> list[dict]:
    counts = Counter(values)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [{"value": v, "count": n} for v, n in ranked[:top]]


def summarise_column(name: str, cells: list[str], top: int) -> dict:
    present = [c.strip() for c in cells if c.strip() != ""]
    col = {
        "name": name,
        "type": infer(present) if present else "empty",
        "count": len(present),
        "missing": len(cells) - len(present),
        "distinct": len(set(present)),
    }
    kind = col["type"]
    if kind in ("integer", "number"):
        nums = [int(v) if kind == "integer" else float(v) for v in present]
        col.update(
            min=sig(min(nums)),
            max=sig(max(nums)),
            sum=sig(math.fsum(nums)),
            mean=sig(statistics.fmean(nums)),
            median=sig(statistics.median(nums)),
            stdev=sig(statistics.pstdev(nums)),
        )
    elif kind == "boolean":
        truths = sum(1 for v in present if BOOLEANS[v.lower()])
        col.update(true=truths, false=len(present) - truths)
    elif kind == "date":
        col.update(min=min(present), max=max(present))
    if kind in ("text", "date", "boolean") and top > 0:
        col["top"] = most_common(present, top)
    return col


def summarise(text: str, delimiter: str, top: int, header: bool) -> dict:
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter, strict=True))
    rows = [r for r in rows if r != []]  # blank lines
    if not rows:
        raise invalid("the input holds no rows")
    width = max(len(r) for r in rows)
    if width > MAX_COLUMNS:
        raise invalid(f"{width} columns: at most {MAX_COLUMNS}")
    if header:
        names, body = rows[0], rows[1:]
    else:
        names, body = [], rows
    names = [n.strip() or f"column_{i + 1}" for i, n in enumerate(names)]
    names += [f"column_{i + 1}" for i in range(len(names), width)]
    ragged = sum(1 for r in body if len(r) != len(names))
    columns = [
        summarise_column(name, [r[i] if i < len(r) else "" for r in body], top)
        for i, name in enumerate(names)
    ]
    return {
        "rows": len(body),
        "delimiter": delimiter,
        "ragged_rows": ragged,
        "columns": columns,
    }


def run(input: bytes, ctx: types.RequestContext) -> bytes:
    try:
        text = input.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        raise invalid(f"input is not UTF-8 text: {e}")
    d = param(ctx, "delimiter")
    if d is None:
        delimiter = sniff_delimiter(text)
    elif d in DELIMITERS:
        delimiter = DELIMITERS[d]
    else:
        raise invalid(f"parameter delimiter={d!r}: use one of , ; | tab")
    t = param(ctx, "top") or "3"
    if not t.isdigit() or int(t) > 20:
        raise invalid(f"parameter top={t!r} must be 0 to 20")
    h = (param(ctx, "header") or "yes").lower()
    if h not in ("yes", "no"):
        raise invalid(f"parameter header={h!r} must be yes or no")
    try:
        summary = summarise(text, delimiter, int(t), h == "yes")
    except csv.Error as e:
        raise invalid(f"malformed CSV: {e}")
    host.log(
        host.Level.INFO,
        "summarised",
        [("rows", str(summary["rows"])), ("columns", str(len(summary["columns"])))],
    )
    return json.dumps(summary, ensure_ascii=False, separators=(",", ":")).encode()


# componentize-py runs this module when it builds the component, and the
# sandbox has no files to import from later: one summary now pulls in every
# module the standard library imports lazily on first use.
summarise("a,b,c,d,e\n1,x,true,2026-01-01,1.5\n", ",", 3, True)


class Tool(exports.Tool):
    def invoke(self, input: bytes, ctx: types.RequestContext) -> bytes:
        try:
            return run(input, ctx)
        except Err:
            raise
        except Exception as e:  # A bug: say what it was, rather than trap.
            raise Err(types.ToolError_Failed(f"{type(e).__name__}: {e}"))
