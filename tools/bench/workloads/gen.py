#!/usr/bin/env python3
"""Generates the fixed inputs of the real-program workloads (standard library only).

    gen.py sql ROWS OUT.sql          SQL script for sqlite3: ROWS-row insert, then queries
    gen.py git COMMITS DIR           a git repository of COMMITS commits (via git fast-import)
    gen.py csource FUNCTIONS OUT.c   a big C translation unit for the compiler workload

Every generator uses a fixed seed: the same arguments give byte-identical inputs.
"""

import os
import random
import subprocess
import sys

SYLLABLES = ["ka", "lo", "mi", "nu", "pe", "ra", "si", "to", "vu", "xe", "zo", "qua", "str", "ing"]


def word(rng, parts=None):
    return "".join(rng.choice(SYLLABLES) for _ in range(parts or rng.randint(1, 5)))


def gen_sql(rows, out_path):
    rng = random.Random(1234)
    with open(out_path, "w") as out:
        out.write("PRAGMA journal_mode=OFF;\nPRAGMA synchronous=OFF;\n")
        out.write(
            "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL, category INTEGER,"
            " price REAL, note TEXT);\n"
        )
        out.write("CREATE TABLE tags(item INTEGER, tag TEXT);\nBEGIN;\n")
        for i in range(1, rows + 1):
            name = word(rng)
            note = " ".join(word(rng) for _ in range(rng.randint(0, 12)))
            out.write(
                "INSERT INTO items VALUES(%d,'%s',%d,%.2f,'%s');\n"
                % (i, name, rng.randint(0, 99), rng.uniform(0.5, 500.0), note)
            )
            if i % 4 == 0:
                out.write("INSERT INTO tags VALUES(%d,'%s');\n" % (i, word(rng, 2)))
        out.write("COMMIT;\n")
        out.write("CREATE INDEX items_category ON items(category);\n")
        out.write("CREATE INDEX items_name ON items(name);\n")
        out.write("CREATE INDEX tags_tag ON tags(tag);\n")
        queries = [
            "SELECT category, count(*), round(avg(price), 2), max(length(note)) FROM items"
            " GROUP BY category ORDER BY category;",
            "SELECT name, price FROM items WHERE note LIKE '%quastr%' ORDER BY price DESC LIMIT 20;",
            "SELECT t.tag, count(*), round(sum(i.price), 2) FROM tags t JOIN items i ON i.id = t.item"
            " GROUP BY t.tag ORDER BY 2 DESC LIMIT 25;",
            "SELECT upper(name) || ':' || category, substr(note, 1, 20) FROM items"
            " WHERE category IN (3, 14, 15, 92) ORDER BY name LIMIT 200;",
            "UPDATE items SET price = price * 1.1, note = note || ' sale' WHERE category % 7 = 0;",
            "SELECT count(DISTINCT name), count(DISTINCT note) FROM items;",
            "DELETE FROM items WHERE id % 10 = 0;",
            "SELECT length(group_concat(name, ',')) FROM (SELECT name FROM items ORDER BY name LIMIT 5000);",
            "SELECT category, name, price FROM (SELECT category, name, price, row_number() OVER"
            " (PARTITION BY category ORDER BY price DESC) AS rank FROM items) WHERE rank <= 3;",
        ]
        for q in queries:
            out.write(q + "\n")


def gen_git(commits, repo_dir):
    rng = random.Random(5678)
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null", HOME=repo_dir)
    subprocess.run(["git", "init", "-q", "-b", "main", repo_dir], check=True, env=env)
    dirs = ["src/%s" % word(rng, 2) for _ in range(12)] + ["docs", "tests", "include"]
    files = {}
    for _ in range(240):
        path = "%s/%s.%s" % (rng.choice(dirs), word(rng, 3), rng.choice(["c", "h", "md", "txt", "py"]))
        files[path] = ["%s %s %s" % (word(rng), word(rng), word(rng)) for _ in range(rng.randint(20, 150))]
    paths = sorted(files)
    stream = []
    timestamp = 1_600_000_000

    def blob(lines):
        data = ("\n".join(lines) + "\n").encode()
        stream.append(b"data %d\n" % len(data))
        stream.append(data)

    for n in range(commits):
        timestamp += rng.randint(60, 7200)
        author = rng.choice(["Ada <ada@example.org>", "Linus <linus@example.org>", "Grace <grace@example.org>"])
        message = ("%s: %s %s\n" % (word(rng, 2), word(rng), word(rng))).encode()
        stream.append(b"commit refs/heads/main\n")
        stream.append(b"committer %s %d +0000\n" % (author.encode(), timestamp))
        stream.append(b"data %d\n" % len(message))
        stream.append(message)
        if n == 0:
            changed = paths  # the first commit adds everything
        else:
            changed = rng.sample(paths, rng.randint(1, 6))
        for path in changed:
            lines = files[path]
            if n > 0:
                for _ in range(rng.randint(1, 8)):
                    action = rng.random()
                    position = rng.randrange(len(lines) + 1)
                    if action < 0.5:
                        lines.insert(position, "%s %s" % (word(rng), word(rng)))
                    elif action < 0.8 and len(lines) > 5:
                        lines[min(position, len(lines) - 1)] = word(rng, 4)
                    elif len(lines) > 5:
                        del lines[min(position, len(lines) - 1)]
            stream.append(b"M 100644 inline %s\n" % path.encode())
            blob(lines)
        stream.append(b"\n")
    subprocess.run(
        ["git", "-C", repo_dir, "fast-import", "--quiet"], input=b"".join(stream), check=True, env=env
    )
    subprocess.run(["git", "-C", repo_dir, "checkout", "-q", "-f", "main"], check=True, env=env)
    subprocess.run(["git", "-C", repo_dir, "gc", "-q"], check=True, env=env)


def gen_csource(functions, out_path):
    rng = random.Random(91011)
    with open(out_path, "w") as out:
        for s in range(40):
            out.write("struct s%d { int a; long b; double c; char name[%d]; struct s%d *next; };\n" % (s, 8 + s, s))
        out.write("\n#define MIX(x, y) ((x) * 31 + ((y) ^ ((x) >> 3)))\n\n")
        for f in range(functions):
            s = rng.randrange(40)
            out.write("long f%d(struct s%d *p, long n, const int *v) {\n" % (f, s))
            out.write("    long acc = %d;\n" % rng.randint(0, 1000))
            for _ in range(rng.randint(2, 6)):
                kind = rng.random()
                if kind < 0.35:
                    out.write(
                        "    for (long i = 0; i < n; i++) { acc = MIX(acc, v[i %% %d]) + p->a; if (acc > %d) acc -= p->b; }\n"
                        % (rng.randint(1, 64), rng.randint(1000, 100000))
                    )
                elif kind < 0.6:
                    out.write("    switch ((int)(acc & 7)) {\n")
                    for c in range(8):
                        out.write("    case %d: acc += %d * (long)p->c; break;\n" % (c, rng.randint(1, 99)))
                    out.write("    default: break;\n    }\n")
                elif kind < 0.8:
                    out.write(
                        "    while (p && p->a < %d) { acc ^= p->name[%d] + (long)p->c; p = p->next; }\n"
                        % (rng.randint(1, 500), rng.randrange(8))
                    )
                elif f > 0:
                    g = rng.randrange(f)
                    out.write("    if (n > 1) acc += f%d((void *)p, n / 2, v);\n" % g)
            out.write("    return acc;\n}\n\n")


def main(argv):
    if len(argv) != 4:
        sys.exit(__doc__)
    kind, count, target = argv[1], int(argv[2]), argv[3]
    if kind == "sql":
        gen_sql(count, target)
    elif kind == "git":
        gen_git(count, target)
    elif kind == "csource":
        gen_csource(count, target)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
