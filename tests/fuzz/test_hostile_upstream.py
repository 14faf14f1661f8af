"""Hostile upstream fuzz (issue 12, "Fuzzing, kept in the suite").

A loopback server (tests/fuzz/rawserver.py) answers what hypothesis generates
(tests/fuzz/hostile.py) to every built-in source, built by the registry with an API key, run
by the real `Engine`. After every run (`hostile.check`):

- no exception escapes ``engine.run``, none is logged (no traceback), none reaches the loop;
- every coin ends with one status (in the summary and at the sink), ok coins have finite
  values, failed ones say why;
- the run ends by its deadline (plus one job in flight and CPU slack);
- tracemalloc's peak stays under 50 MiB, whatever the size or encoding of the answers;
- the key appears in no error, note, job error, summary or log line (nor 7 characters of
  it, outside three known cut sites: see tests/fuzz/test_fuzz_findings.py).

Bounded: ``COINHARVEST_FUZZ_EXAMPLES`` examples per test (default 50, 4 tests), no
per-example deadline, no database. ``COINHARVEST_FUZZ_EXAMPLES=1000`` for a deeper look.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, event, given, settings, target
from hypothesis import strategies as st

from .hostile import (
    KEY,
    MIB,
    STATUSES,
    Observed,
    all_bodies,
    check,
    dead_sources,
    headers,
    leaks,
    run_hostile,
    scripts,
    small_bodies,
    wires,
)
from .rawserver import Wire

EXAMPLES = int(os.environ.get("COINHARVEST_FUZZ_EXAMPLES") or 50)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)

#: Statuses and pause headers, small bodies, honest framing.
status_answers = wires(
    statuses=st.sampled_from(STATUSES),
    bodies=small_bodies,
    encodings=st.sampled_from(["identity", "identity", "gzip"]),
    framings=st.just("exact"),
    extra_headers=headers,
)
#: 2xx answers with every kind of body: the real shape mutated, truncated, nested, huge.
body_answers = wires(
    statuses=st.sampled_from([200, 200, 200, 201, 203]),
    bodies=all_bodies,
    encodings=st.sampled_from(["identity", "identity", "gzip", "deflate"]),
    framings=st.sampled_from(["exact", "exact", "chunked", "eof"]),
    extra_headers=st.just(()),
)
#: Lying framing and encodings on a few statuses; some sources dead (connection refused).
wire_answers = wires(
    statuses=st.sampled_from([200, 200, 429, 500, 503]),
    bodies=small_bodies,
)
#: Everything at once.
any_answers = wires()


def test_the_leak_check_sees_whole_keys_and_fragments() -> None:
    assert leaks(f"x {KEY} y") and leaks(f"got '{KEY[:12]}")
    assert leaks(f"got '{KEY[:12]}...'") and not leaks("got '***...'")
    assert not leaks(f"HTTP 429: slow {KEY[:9]}", wire_cut=True)
    assert leaks(f"HTTP 429: {KEY[3:12]}", wire_cut=True)  # not a start of the key


def observe(observed: Observed) -> None:
    """Check the properties; steer hypothesis towards answers that cost memory. Its
    statistics (``--hypothesis-show-statistics``) show the highest peak, and as events how
    many requests and how long each run took."""
    target(observed.peak_bytes / MIB, label="tracemalloc peak (MiB)")
    low = min(observed.requests // 5 * 5, 30)
    event(f"requests: {low}-{low + 4}" if low < 30 else "requests: 30+")
    event(f"run: {'<0.5' if observed.wall_s < 0.5 else '<1' if observed.wall_s < 1 else '>=1'} s")
    check(observed)


@FUZZ
@given(script=scripts(status_answers))
def test_statuses_and_pause_headers(script: dict[str, list[Wire]]) -> None:
    observe(run_hostile(script, set()))


@FUZZ
@given(script=scripts(body_answers))
def test_hostile_bodies(script: dict[str, list[Wire]]) -> None:
    observe(run_hostile(script, set()))


@FUZZ
@given(script=scripts(wire_answers), dead=dead_sources)
def test_lying_wire_and_dead_sources(script: dict[str, list[Wire]], dead: set[str]) -> None:
    observe(run_hostile(script, dead))


@FUZZ
@given(script=scripts(any_answers), dead=dead_sources)
def test_everything_at_once(script: dict[str, list[Wire]], dead: set[str]) -> None:
    observe(run_hostile(script, dead))
