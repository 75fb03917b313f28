#!/usr/bin/env python3
"""Write the dataset fixtures: a conversational math set as parquet and as
its JSONL twin, and small malformed parquet files for the error tests.

    .venv/bin/python tools/make_data_fixtures.py   # (re)writes fixtures/data/

Nothing is downloaded. The rows are TRL's conversational format: a
`messages` list (system + user turns, some ending with the assistant's
answer, which `analyze` reads as the response and `train` drops) or a
`prompt` list of messages, and the reference `answer` (a string or, in some
rows, a number) for the math verifier. Text stays within the tiny fixture
tokenizer's characters (lower case, digits, a few signs), so that
fixtures/models/tiny-qwen3-chat can run on it.

Files (fixtures/data/):
    conversational.parquet   8 rows, two row groups of 4 (snappy), so that
                             reading crosses a row-group boundary
    conversational.jsonl     the same rows, one JSON object per line
    bad-types.parquet        `prompt` is an int64 column
    bad-binary.parquet       `prompt` is a binary column
"""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "data"

SYSTEM = {"role": "system", "content": "think, then give the answer in a box."}


def rows() -> list[dict]:
    out = []
    problems = [(2, 3), (4, 5), (7, 1), (6, 6), (9, 3), (8, 4), (5, 2), (1, 1)]
    for i, (a, b) in enumerate(problems):
        user = {"role": "user", "content": f"what is {a}+{b}?"}
        messages = [SYSTEM, user] if i % 2 == 0 else [user]
        if i % 3 == 0:
            messages = messages + [{"role": "assistant", "content": f"so {a}+{b}={a + b}."}]
        out.append({"messages": messages, "answer": str(a + b), "id": i})
    return out


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    data = rows()
    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    schema = pa.schema(
        [("messages", pa.list_(message)), ("answer", pa.string()), ("id", pa.int64())]
    )
    table = pa.Table.from_pylist(data, schema=schema)
    pq.write_table(table, OUT / "conversational.parquet", row_group_size=4, compression="snappy")
    with open(OUT / "conversational.jsonl", "w", encoding="utf-8") as f:
        for row in data:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    pq.write_table(
        pa.table({"prompt": pa.array([1, 2], pa.int64()), "answer": ["1", "2"]}),
        OUT / "bad-types.parquet",
    )
    pq.write_table(
        pa.table({"prompt": pa.array([b"what is 1+1?"], pa.binary()), "answer": ["2"]}),
        OUT / "bad-binary.parquet",
    )
    print(f"wrote {len(data)} rows to {OUT}")


if __name__ == "__main__":
    main()
