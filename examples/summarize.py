"""Summarise a CSV of sales: the rgrid demo script.

Run it locally with `python summarize.py data/sales.csv`, or remotely with
`rgrid run summarize.py data/sales.csv`: same arguments, same output files.
"""
import csv
import json
import os
import sys
from collections import defaultdict


def main(path: str) -> None:
    totals: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            totals[row["region"]] += float(row["amount"])
            counts[row["region"]] += 1

    summary = {
        "input": path,
        "rows": sum(counts.values()),
        "regions": {r: {"orders": counts[r], "revenue": round(totals[r], 2)} for r in sorted(totals)},
    }
    with open("summary.json", "w") as f:
        json.dump(summary, f, indent=2)

    os.makedirs("reports/by-region", exist_ok=True)
    for region in sorted(totals):
        with open(f"reports/by-region/{region}.txt", "w") as f:
            f.write(f"{region}: {counts[region]} orders, revenue {totals[region]:.2f}\n")

    print(f"Read {summary['rows']} rows from {path}")
    for region, stats in summary["regions"].items():
        print(f"  {region:<6} {stats['orders']:>3} orders  {stats['revenue']:>10.2f}")
    print("Wrote summary.json and reports/by-region/")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: summarize.py <sales.csv>")
    main(sys.argv[1])
