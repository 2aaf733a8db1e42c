"""Python workload for the malloctrace benchmark suite (run with PYTHONMALLOC=malloc).

    python3 pywork.py RECORDS

Builds RECORDS records (in rounds of at most 20,000) as dicts and small objects, formats and parses
strings and JSON, sorts, groups and indexes them: the allocation pattern of an ordinary
data-processing script.  Uses a fixed seed, so every run does the same work.  About 90 malloc calls
per record (with PYTHONMALLOC=malloc).  Prints a checksum.
"""

import json
import random
import re
import sys
from collections import Counter, defaultdict


class Record:
    __slots__ = ("ident", "name", "category", "price", "tags")

    def __init__(self, ident, name, category, price, tags):
        self.ident = ident
        self.name = name
        self.category = category
        self.price = price
        self.tags = tags

    def as_dict(self):
        return {"id": self.ident, "name": self.name, "category": self.category,
                "price": self.price, "tags": list(self.tags)}


SYLLABLES = ["ka", "lo", "mi", "nu", "pe", "ra", "si", "to", "vu", "xe", "zo", "qua"]
WORD = re.compile(r"[a-z]+")


def one_round(rng, count):
    records = []
    for i in range(count):
        name = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 5)))
        tags = tuple(rng.choice(SYLLABLES) * 2 for _ in range(rng.randint(0, 4)))
        records.append(Record(i, name, rng.randint(0, 49), round(rng.uniform(1, 500), 2), tags))

    text = json.dumps([r.as_dict() for r in records])
    decoded = json.loads(text)

    by_category = defaultdict(list)
    for item in decoded:
        by_category[item["category"]].append(item)
    summary = {}
    for category, items in sorted(by_category.items()):
        items.sort(key=lambda item: (-item["price"], item["name"]))
        summary[category] = (len(items), sum(item["price"] for item in items), items[0]["name"])

    words = Counter()
    for record in records:
        line = "%s %s %s" % (record.name, " ".join(record.tags), f"{record.price:.2f}")
        words.update(WORD.findall(line))

    lines = [f"{k}:{v}" for k, v in words.most_common(200)]
    index = {r.name: r for r in records}
    return len(text) + len(lines) + len(index) + sum(n for n, _, _ in summary.values())


def main():
    remaining = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    rng = random.Random(42)
    checksum = 0
    while remaining > 0:
        count = min(remaining, 20000)
        checksum += one_round(rng, count)
        remaining -= count
    print("checksum", checksum)


if __name__ == "__main__":
    main()
