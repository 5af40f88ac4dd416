"""Fuzzed bad input: scenario files, overrides and CLI arguments never crash the CLI.

Whatever the input, `kafkasim` ends with exit code 0 (valid) or 2 with `error: ...` lines naming
the problem: never a traceback, never another exit code, never a partial run directory.
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = yaml.safe_load((ROOT / "scenarios" / "quickstart.yaml").read_text())
FUZZ = dict(max_examples=150, deadline=None, derandomize=True,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(["-5s", "1e400ms", "10/s", "0/s", "16KiB", "abc", "all", "-1", "",
                                           "1h", "5m", "NaN", "inf", "1e3", "\x00", "🙂"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=6)


def _paths(node, prefix=()):
    """Every dotted path into the quickstart scenario."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


PATHS = list(_paths(QUICKSTART))


def _check(capsys, argv, out_dir: Path | None = None) -> int:
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc in (0, 2), (rc, err)
    assert "Traceback" not in err
    if rc == 2:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert lines and all(ln.startswith("error: ") for ln in lines), err
        assert all(len(ln) > len("error: ") + 3 for ln in lines)
        if out_dir is not None:
            assert not out_dir.exists()  # nothing written for bad input
    return rc


@settings(**FUZZ)
@given(st.binary(max_size=300))
def test_garbage_files(tmp_path_factory, capsys, data):
    p = tmp_path_factory.mktemp("fuzz") / "garbage.yaml"
    p.write_bytes(data)
    _check(capsys, ["validate", str(p)])


@settings(**FUZZ)
@given(values)
def test_random_yaml_documents(tmp_path_factory, capsys, doc):
    p = tmp_path_factory.mktemp("fuzz") / "doc.yaml"
    p.write_text(yaml.safe_dump(doc, allow_unicode=True))
    _check(capsys, ["validate", str(p)])


@settings(**FUZZ)
@given(st.sampled_from(PATHS), values)
def test_quickstart_with_one_field_replaced(tmp_path_factory, capsys, path, value):
    doc = copy.deepcopy(QUICKSTART)
    node = doc
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    d = tmp_path_factory.mktemp("fuzz")
    p = d / "mutated.yaml"
    p.write_text(yaml.safe_dump(doc, allow_unicode=True))
    _check(capsys, ["validate", str(p)])


@settings(**FUZZ)
@given(st.text(max_size=40), st.text(max_size=20))
def test_random_overrides(tmp_path_factory, capsys, key, value):
    out = tmp_path_factory.mktemp("fuzz") / "run"
    argv = ["run", str(ROOT / "scenarios" / "quickstart.yaml"), "--set", f"{key}={value}", "--set", "duration=1s",
            "--set", "faults=[]", "--set", "settle=1s", "--out", str(out)]
    rc = _check(capsys, argv, out_dir=out)
    if rc == 0:
        assert (out / "summary.json").exists()


@settings(**FUZZ)
@given(st.lists(st.one_of(st.sampled_from(["validate", "scenarios", "run", "--seed", "--set", "--out", "--show",
                                           "-x", "--help", "nope.yaml", "1", "-1", "a=b"]),
                          st.text(max_size=10)), max_size=5))
def test_random_cli_arguments(capsys, argv):
    if "run" in argv and "--help" not in argv:
        argv = [a if a != "run" else "validate" for a in argv]  # never start a real run here
    rc = main(argv)
    out = capsys.readouterr()
    assert rc in (0, 2), (argv, rc, out.err)
    assert "Traceback" not in out.err
    if rc == 2 and argv:
        lines = [ln for ln in out.err.splitlines() if ln.strip()]
        assert lines and all(ln.startswith("error: ") for ln in lines), (argv, out.err)
