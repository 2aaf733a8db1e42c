#!/usr/bin/env bash
# Smoke test on real programs: each one runs untraced and under `malloctrace run`, and must give
# byte-identical stdout (and output files) and the same exit status; its trace must read back with
# allocations in it. Programs: sqlite3 on a generated script, python3 with PYTHONMALLOC=malloc, git log in a
# generated repository, gcc -c (gcc forks cc1 and as: traced with MALLOCTRACE_FOLLOW_CHILDREN=1 and a %p
# pattern, and cc1's own trace must be there) and a Swift program (the malloctrace CLI reading a trace).
#
# Usage: tools/smoke.sh [swift build options, e.g. -c release --static-swift-stdlib]   (default: the debug build)
# Installs sqlite3, git and gcc with apt-get when they are missing (tools/install-deps.sh). Exit status 0 when
# every program passed.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh sqlite3 git gcc python3
swift build "$@" >/dev/null
cli=$(swift build "$@" --show-bin-path)/malloctrace
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

say() { printf 'smoke: %s\n' "$*" >&2; }

# written DIRECTORY: checksums of the files the command created or changed there.
written() {
    (cd "$1" && find . -type f -newer "$1.prepared" -print0 | sort -z | xargs -0 -r sha256sum)
}

# check NAME COMMAND...: runs COMMAND in $work/NAME.untraced and $work/NAME.traced (fresh directories that
# prepare_NAME filled the same way), compares stdout, status and the files the command wrote, and checks
# the trace.
check() {
    local name=$1
    shift
    local untraced=$work/$name.untraced traced=$work/$name.traced status_untraced=0 status_traced=0
    mkdir -p "$untraced" "$traced"
    prepare_"$name" "$untraced"
    prepare_"$name" "$traced"
    touch "$untraced.prepared" "$traced.prepared"
    sleep 0.1 # file times tick with the kernel's coarse clock: what the command writes must be newer
    local started=$SECONDS
    (cd "$untraced" && "$@" <"$work/$name.stdin" >"$work/$name.untraced.out" 2>"$work/$name.untraced.err") ||
        status_untraced=$?
    local untraced_seconds=$((SECONDS - started))
    started=$SECONDS
    (cd "$traced" && "$cli" run -o "$work/$name.%p.mtrace" -- "$@" <"$work/$name.stdin" \
        >"$work/$name.traced.out" 2>"$work/$name.traced.err") || status_traced=$?
    local traced_seconds=$((SECONDS - started))
    local problems=()
    cmp -s "$work/$name.untraced.out" "$work/$name.traced.out" || problems+=("stdout differs")
    [[ $status_untraced -eq $status_traced ]] || problems+=("status $status_traced, untraced $status_untraced")
    written "$untraced" >"$work/$name.untraced.files"
    written "$traced" >"$work/$name.traced.files"
    cmp -s "$work/$name.untraced.files" "$work/$name.traced.files" || problems+=("files written differ")
    local traces=("$work/$name".*.mtrace)
    [[ -e ${traces[0]} ]] || problems+=("no trace written")
    local calls=0
    if [[ -e ${traces[0]} ]]; then
        calls=$("$cli" report "${traces[0]}" --format json --top 0 |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["summary"]["allocation_calls"])') ||
            problems+=("the trace does not read back")
        [[ $calls -gt 0 ]] || problems+=("no allocations in the trace")
    fi
    if [[ $(type -t verify_"$name") == function ]]; then
        local extra
        extra=$(verify_"$name") || problems+=("$extra")
    fi
    if [[ ${#problems[@]} -eq 0 ]]; then
        say "$name: ok (status $status_traced, $(wc -c <"$work/$name.traced.out") bytes of identical stdout," \
            "$calls allocation calls in ${#traces[@]} trace(s); ${untraced_seconds}s untraced, ${traced_seconds}s traced)"
    else
        say "$name: FAILED: $(
            IFS=';'
            echo "${problems[*]}"
        )"
        sed 's/^/    stderr: /' "$work/$name.traced.err" | head -20 >&2
        failures=$((failures + 1))
    fi
}

# sqlite3: 200,000 rows through a temporary table, an index, aggregates and a join.
prepare_sqlite3() {
    cat >"$work/sqlite3.stdin" <<'SQL'
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, value REAL);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)
INSERT INTO t SELECT i, 'name-' || (i * 7919 % 1000), i * 0.5 FROM n;
CREATE INDEX t_name ON t(name);
SELECT name, count(*), sum(value) FROM t GROUP BY name ORDER BY name LIMIT 20;
SELECT count(*) FROM t a JOIN t b ON a.id = b.id + 1 WHERE a.name = b.name;
SELECT group_concat(name, ',') FROM (SELECT DISTINCT name FROM t ORDER BY name DESC LIMIT 50);
SQL
}

# python3 (the real binary, not a pyenv shim) with pymalloc off, so every object is a malloc.
prepare_python3() {
    cat >"$work/python3.stdin" <<'PY'
import collections, json, re
words = [f"w{i * 7919 % 5003}" for i in range(100000)]
counts = collections.Counter(words)
print(json.dumps(sorted(counts.items())[:10]))
print(sum(len(re.findall(r"\d", w)) for w in words))
print(len({w: [w] * 3 for w in words}))
PY
}

# git: a repository with 30 commits made with fixed names and dates, so hashes are the same every time.
prepare_git() {
    : >"$work/git.stdin"
    (
        cd "$1"
        export GIT_AUTHOR_NAME=smoke GIT_AUTHOR_EMAIL=smoke@example.invalid GIT_COMMITTER_NAME=smoke
        export GIT_COMMITTER_EMAIL=smoke@example.invalid HOME=$1 GIT_CONFIG_NOSYSTEM=1
        git init -q -b main repo
        cd repo
        for i in $(seq 1 30); do
            printf 'line %s\n' $(seq 1 "$i") >"file$((i % 5)).txt"
            git add -A
            GIT_AUTHOR_DATE="2024-01-01T00:00:$((i + 10))Z" GIT_COMMITTER_DATE="2024-01-01T00:00:$((i + 10))Z" \
                git commit -q -m "commit $i"
        done
    )
}

# gcc: a small C file compiled to an object file; the object must be byte-identical.
prepare_gcc() {
    : >"$work/gcc.stdin"
    cat >"$1/small.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
struct node { int value; struct node *next; };
static struct node *push(struct node *list, int value) {
    struct node *n = malloc(sizeof *n);
    n->value = value;
    n->next = list;
    return n;
}
int main(void) {
    struct node *list = NULL;
    for (int i = 0; i < 100; i++) list = push(list, i * i);
    long sum = 0;
    for (struct node *n = list; n; n = n->next) sum += n->value;
    printf("%ld\n", sum);
    return 0;
}
C
}

# cc1 runs as a child of gcc: it must have a trace of its own.
verify_gcc() {
    local found=no trace
    for trace in "$work"/gcc.*.mtrace; do
        "$cli" report "$trace" --format json --top 0 |
            python3 -c 'import json, sys; sys.exit(not json.load(sys.stdin)["trace"]["executable"].endswith("/cc1"))' &&
            found=yes
    done
    [[ $found == yes ]] || {
        echo "no trace of cc1"
        return 1
    }
}

# A Swift program: the malloctrace CLI itself, reading the sqlite3 trace into a JSON report.
prepare_swift() {
    : >"$work/swift.stdin"
    cp "$(ls "$work"/sqlite3.*.mtrace | head -1)" "$1/input.mtrace"
}

check sqlite3 sqlite3 -batch :memory:
PYTHONMALLOC=malloc check python3 /usr/bin/python3 -
GIT_CONFIG_NOSYSTEM=1 HOME=$work check git git -C repo --no-pager log --stat --format='%H %s'
MALLOCTRACE_FOLLOW_CHILDREN=1 check gcc gcc -O2 -c small.c -o small.o
check swift "$cli" report input.mtrace --format json --top 5

if [[ $failures -ne 0 ]]; then
    say "$failures program(s) failed"
    exit 1
fi
say "all programs passed"
