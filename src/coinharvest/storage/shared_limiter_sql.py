"""The shared limiter's state and decisions in PostgreSQL (``SHARED_LIMITS=on``): DDL for
revision 0007 and the PL/pgSQL functions every process calls (`engine/shared_limits.py`).

One row of ``shared_limits`` per *limit key* (``source:key-fingerprint``: two deployments
using the same API key share it, two keys do not). Every decision locks that row
(``FOR UPDATE``: decisions of one key are serialised across processes) and reads
``clock_timestamp()`` *after* the lock, so only the database's clock decides (the processes'
clocks may be wrong by hours) and a decision never uses a time older than the one before it.

Every lease belongs to an *owner*: one client (`SharedLimits`, one per process) holding the
session advisory lock ``(OWNER_NS, owner)`` on a dedicated connection, its number from the
``shared_limit_owners`` sequence. The database itself decides who lives: a lease whose
owner's lock is no longer held (the process was killed, its session ended) is dropped at the
next decision of its key, so its slot is free within one admission, not at its expiry
(which stays as the last resort). A caller whose own lock is not held gets no lease.

- ``shared_limit_acquire``: refuses a caller whose owner lock is not held (wait -3), drops
  expired leases, leases of dead owners and starts older than the window, then
  refuses when a quota is spent (wait -2), waits for the cooldown, the spacing since the last
  start and the rolling window (wait > 0 ms), refuses while the in-flight cap is full
  (wait -1), else records the lease, the start and the quota counts (wait 0). The cap and
  spacing used are the stricter of the caller's and those an adaptive controller reported
  (kept ``p_learned_ttl_ms``, so a stopped controller's limits wear off).
- ``shared_limit_send``: a request's headers are about to go on the wire: wait until the
  spacing since the last request *on the wire* has passed, then stamp its start (and the
  lease) with that time; -3 (not to be sent) when the lease is gone or its owner is dead.
  Admission happens before the connection opens; two processes' sends can overtake each
  other, and only the send time is what the upstream sees.
- ``shared_limit_cool_down``: pause the key for every process (a 429, a spent quota).
- Release is one ``DELETE`` of the lease (`RELEASE`).

The in-flight leases and the window's starts are UNLOGGED tables (no WAL: ~25 % cheaper per
admission, bench/shared_limiter_pg.py); PostgreSQL empties them after its own crash, which
forgets at most one window of starts. The key's row (cooldown, learned limits, quota
counters) is logged. Each decision commits with ``synchronous_commit`` off: a PostgreSQL
crash may lose the last fraction of a second of counts, never corrupt them.
"""

from __future__ import annotations

__all__ = ["CREATE", "DROP", "NEXT_OWNER", "OWNER_NS", "RELEASE", "TABLES", "TAKE_OWNER"]

#: The tables of the shared limiter: PostgreSQL only, outside `schema.metadata` (UNLOGGED
#: is not expressible there, and only the functions below read or write them).
TABLES = ("shared_limits", "shared_limit_leases", "shared_limit_starts")

#: The first key of every owner lock, ``pg_try_advisory_lock(OWNER_NS, owner)`` ('lims' in
#: ASCII). pg_locks shows it as classid OWNER_NS, objid owner, objsubid 2: never the leader
#: lock (one bigint key: classid 0, objsubid 1; `leader_sql.LEADER_KEY`).
OWNER_NS = 0x6C696D73

#: A fresh owner number (1 .. 2**31-1, cycling: a reused number is refused by the lock).
NEXT_OWNER = "SELECT nextval('shared_limit_owners')::integer"

#: Takes owner `$1`'s lock on this session (false: another session holds it).
TAKE_OWNER = f"SELECT pg_try_advisory_lock({OWNER_NS}, $1::integer)"

_TABLES = """
CREATE TABLE shared_limits (
    limit_key text PRIMARY KEY,
    last_start timestamptz NOT NULL DEFAULT 'epoch',
    last_sent timestamptz NOT NULL DEFAULT 'epoch',
    cooldown_until timestamptz NOT NULL DEFAULT 'epoch',
    learned_cap integer,
    learned_spacing_ms double precision,
    learned_until timestamptz NOT NULL DEFAULT 'epoch',
    quota_day date,
    used_day integer NOT NULL DEFAULT 0,
    used_month integer NOT NULL DEFAULT 0
);
CREATE SEQUENCE shared_limit_owners AS integer CYCLE;
CREATE UNLOGGED TABLE shared_limit_leases (
    limit_key text NOT NULL,
    lease uuid NOT NULL,
    owner integer NOT NULL,
    expires timestamptz NOT NULL,
    PRIMARY KEY (limit_key, lease)
);
CREATE UNLOGGED TABLE shared_limit_starts (
    limit_key text NOT NULL,
    lease uuid NOT NULL,
    at timestamptz NOT NULL
);
CREATE INDEX ix_shared_limit_starts ON shared_limit_starts (limit_key, at DESC);
"""

# The row of `k`, locked; created on first use. `now_ts` is read after the lock.
_LOCK = """
    SELECT * INTO st FROM shared_limits WHERE limit_key = k FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO shared_limits (limit_key) VALUES (k) ON CONFLICT DO NOTHING;
        SELECT * INTO st FROM shared_limits WHERE limit_key = k FOR UPDATE;
    END IF;
    now_ts := clock_timestamp();
    PERFORM set_config('synchronous_commit', 'off', true);
"""

_ACQUIRE = """
CREATE OR REPLACE FUNCTION shared_limit_acquire(
    k text, p_lease uuid, p_owner integer, p_lease_ms double precision, p_cap integer,
    p_spacing_ms double precision, p_window_ms double precision, p_window_n integer,
    p_per_day integer, p_per_month integer,
    p_learned_cap integer, p_learned_spacing_ms double precision, p_learned_ttl_ms double precision,
    OUT wait_ms integer, OUT why text, OUT used_day integer, OUT used_month integer
) LANGUAGE plpgsql AS $$
DECLARE
    st shared_limits%ROWTYPE;
    now_ts timestamptz;
    cap integer := p_cap;
    spacing double precision := p_spacing_ms;
    w double precision := 0;
    nth timestamptz;
    today date;
    allowance integer;
    live oid[];
BEGIN
    -- Owners whose session lives, read once (one scan of the lock table; before the row
    -- lock, so the scan does not lengthen the key's critical section).
    live := ARRAY(SELECT l.objid FROM pg_locks l WHERE l.locktype = 'advisory'
        AND l.classid = __NS__ AND l.objsubid = 2 AND l.granted);
    IF NOT p_owner::oid = ANY(live) THEN  -- the caller's own session is gone: no lease for it
        wait_ms := -3; why := 'owner'; RETURN;
    END IF;
    __LOCK__
    IF p_learned_cap IS NOT NULL THEN  -- an adaptive controller reports what it decided
        UPDATE shared_limits SET learned_cap = p_learned_cap,
            learned_spacing_ms = p_learned_spacing_ms,
            learned_until = now_ts + make_interval(secs => p_learned_ttl_ms / 1000.0)
            WHERE limit_key = k RETURNING * INTO st;
    END IF;
    IF st.learned_until > now_ts THEN
        cap := least(cap, st.learned_cap);
        spacing := greatest(spacing, st.learned_spacing_ms);
    END IF;
    -- A lease ends with its holder's session (a killed process), or at its expiry.
    DELETE FROM shared_limit_leases l WHERE l.limit_key = k
        AND (l.expires <= now_ts OR NOT l.owner::oid = ANY(live));
    DELETE FROM shared_limit_starts
        WHERE limit_key = k AND at <= now_ts - make_interval(secs => p_window_ms / 1000.0);
    -- Quotas count per UTC day and month of the database's clock.
    today := (now_ts AT TIME ZONE 'UTC')::date;
    used_day := CASE WHEN st.quota_day = today THEN st.used_day ELSE 0 END;
    used_month := CASE WHEN date_trunc('month', st.quota_day) = date_trunc('month', today)
                       THEN st.used_month ELSE 0 END;
    IF p_per_month IS NOT NULL THEN
        -- A day may use its share of what the month has left (engine/quota.py).
        allowance := ceil((p_per_month - (used_month - used_day))::numeric
            / ((date_trunc('month', today) + interval '1 month')::date - today));
        allowance := greatest(0, least(allowance, coalesce(p_per_day, allowance)));
        IF used_month >= p_per_month THEN
            wait_ms := -2; why := 'quota'; RETURN;
        END IF;
    ELSE
        allowance := p_per_day;
    END IF;
    IF allowance IS NOT NULL AND used_day >= allowance THEN
        wait_ms := -2; why := 'quota'; RETURN;
    END IF;
    IF st.cooldown_until > now_ts THEN
        w := extract(epoch FROM st.cooldown_until - now_ts) * 1000; why := 'cooldown';
    END IF;
    IF extract(epoch FROM st.last_start - now_ts) * 1000 + spacing > w THEN
        w := extract(epoch FROM st.last_start - now_ts) * 1000 + spacing; why := 'spacing';
    END IF;
    IF p_window_n IS NOT NULL THEN
        SELECT s.at INTO nth FROM shared_limit_starts s WHERE s.limit_key = k
            ORDER BY s.at DESC OFFSET p_window_n - 1 LIMIT 1;
        IF FOUND AND extract(epoch FROM nth - now_ts) * 1000 + p_window_ms > w THEN
            w := extract(epoch FROM nth - now_ts) * 1000 + p_window_ms; why := 'window';
        END IF;
    END IF;
    IF w > 0 THEN
        wait_ms := ceil(w)::integer; RETURN;
    END IF;
    IF (SELECT count(*) FROM shared_limit_leases l WHERE l.limit_key = k) >= cap THEN
        wait_ms := -1; why := 'cap'; RETURN;
    END IF;
    INSERT INTO shared_limit_leases VALUES
        (k, p_lease, p_owner, now_ts + make_interval(secs => p_lease_ms / 1000.0));
    INSERT INTO shared_limit_starts VALUES (k, p_lease, now_ts);
    used_day := used_day + 1;
    used_month := used_month + 1;
    UPDATE shared_limits SET last_start = now_ts, quota_day = today,
        used_day = shared_limit_acquire.used_day, used_month = shared_limit_acquire.used_month
        WHERE limit_key = k;
    wait_ms := 0; why := NULL;
END $$;
"""

_SEND = """
CREATE OR REPLACE FUNCTION shared_limit_send(
    k text, p_lease uuid, p_lease_ms double precision, p_spacing_ms double precision
) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    st shared_limits%ROWTYPE;
    now_ts timestamptz;
    spacing double precision := p_spacing_ms;
    w double precision;
    holder integer;
BEGIN
    -- A lease whose holder's session ended counts for nobody: its request must not go.
    SELECT l.owner INTO holder FROM shared_limit_leases l
        WHERE l.limit_key = k AND l.lease = p_lease;
    IF NOT FOUND OR NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory'
            AND l.classid = __NS__ AND l.objid = holder::oid AND l.objsubid = 2 AND l.granted)
    THEN
        RETURN -3;
    END IF;
    __LOCK__
    IF st.learned_until > now_ts THEN
        spacing := greatest(spacing, st.learned_spacing_ms);
    END IF;
    w := extract(epoch FROM st.last_sent - now_ts) * 1000 + spacing;
    IF w > 0 THEN
        RETURN ceil(w)::integer;
    END IF;
    UPDATE shared_limit_leases SET expires = now_ts + make_interval(secs => p_lease_ms / 1000.0)
        WHERE limit_key = k AND lease = p_lease;
    IF NOT FOUND THEN  -- dropped since (its holder seen dead by another process's admission)
        RETURN -3;
    END IF;
    UPDATE shared_limits SET last_sent = now_ts, last_start = greatest(last_start, now_ts)
        WHERE limit_key = k;
    UPDATE shared_limit_starts SET at = now_ts WHERE limit_key = k AND lease = p_lease;
    RETURN 0;
END $$;
"""

_COOL_DOWN = """
CREATE OR REPLACE FUNCTION shared_limit_cool_down(k text, p_seconds double precision)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    st shared_limits%ROWTYPE;
    now_ts timestamptz;
BEGIN
    __LOCK__
    UPDATE shared_limits SET cooldown_until = greatest(cooldown_until,
        now_ts + make_interval(secs => p_seconds)) WHERE limit_key = k;
END $$;
"""

#: Every statement of revision 0007's upgrade, in order.
CREATE: tuple[str, ...] = (
    *(table.strip() for table in _TABLES.split(";") if table.strip()),
    *(
        fn.replace("__LOCK__", _LOCK.strip()).replace("__NS__", str(OWNER_NS))
        for fn in (_ACQUIRE, _SEND, _COOL_DOWN)
    ),
)

#: Revision 0007's downgrade.
DROP: tuple[str, ...] = (
    "DROP FUNCTION IF EXISTS shared_limit_acquire, shared_limit_send, shared_limit_cool_down",
    "DROP TABLE IF EXISTS shared_limits, shared_limit_leases, shared_limit_starts",
    "DROP SEQUENCE IF EXISTS shared_limit_owners",
)

#: Gives a lease back (its slot is free for every process at once).
RELEASE = "DELETE FROM shared_limit_leases WHERE limit_key = $1 AND lease = $2"
