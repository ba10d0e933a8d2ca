"""The independent probe of team m004 (every synced key starts with its user), on real PostgreSQL: renamed users,
an upgrade racing writers, two writers' delegations at the cap, and what the team total counts."""

from __future__ import annotations

import math
import re
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from benchmarks import corpus
from mcp_router import budget, team
from mcp_router.budget import record_cost, void_cost
from mcp_router.config import Config
from mcp_router.pricing import Usage
from mcp_router.store import SCHEMA_VERSION, connect
from mcp_router.sync import ledger_id, sync
from mcp_router.team import MIGRATE_LOCK
from mcp_router.team import connect as team_connect
from mcp_router.team_budget import TeamBudget
from tests.test_team import CATALOG, _counts, _local_counts, _machine
from tests.test_team_keys import M003, _client_at_m003, _month_to_date


def _rename(config: Config, user: str) -> Config:
    return Config(team_db_url=config.team_db_url, user=user, machine=config.machine)


def test_a_user_renamed_and_back_sends_nothing_twice(tmp_path: Path, team_db_url: str) -> None:
    # A -> B -> A: A's old marks were kept (ON CONFLICT DO NOTHING), so what went under B went again under A.
    conn, alice, _ = _machine(tmp_path, 0, team_db_url, sessions=1)
    record_cost(conn, alice, CATALOG, "claude-haiku-4-5", Usage(input_tokens=10, output_tokens=5))
    sync(conn, alice)
    bob = _rename(alice, "bob@example.com")
    record_cost(conn, bob, CATALOG, "claude-haiku-4-5", Usage(input_tokens=1000, output_tokens=500))
    assert sync(conn, bob).sent["cost_records"] == 1
    spent = _month_to_date(team_db_url)
    assert sync(conn, alice).sent["cost_records"] == 0
    assert _counts(team_db_url) == _local_counts(conn)
    assert _month_to_date(team_db_url) == pytest.approx(spent, abs=1e-12)


@pytest.mark.xfail(strict=True, reason="not fixed: a row sent under the old name and changed after a rename is sent"
                   " again under the new one (a new key), while the old row keeps counting; under the README's roles"
                   " the new name may not change the old name's rows. Needs a design (e.g. changed rows sent under"
                   " the name they were first sent as, which RLS refuses to a renamed role)")
def test_a_cost_voided_after_a_rename_stops_counting_in_the_team_month(tmp_path: Path, team_db_url: str) -> None:
    conn, alice, _ = _machine(tmp_path, 0, team_db_url, sessions=1)
    record = record_cost(conn, alice, CATALOG, "claude-haiku-4-5", Usage(input_tokens=100_000, output_tokens=50_000))
    sync(conn, alice)
    spent = _month_to_date(team_db_url)
    bob = _rename(alice, "bob@example.com")
    void_cost(conn, record["id"])
    sync(conn, bob)
    assert _month_to_date(team_db_url) == pytest.approx(spent - record["cost_usd"], abs=1e-9)


@pytest.mark.xfail(strict=True, reason="by design of m004, not fixed: the same response in two users' ledgers (a"
                   " ~/.claude shared by two identities) is two rows and counts twice in the team total and cap;"
                   " one API call is billed once. Keying on the response alone let a writer hide another's row;"
                   " counting once needs the report to take one copy per response")
def test_the_same_response_synced_by_two_users_counts_once_in_the_team_total(tmp_path: Path,
                                                                             team_db_url: str) -> None:
    conn, alice, _ = _machine(tmp_path, 0, team_db_url, sessions=1)
    sync(conn, alice)
    in_the_corpus_month = corpus.START.replace(day=28)  # the transcripts' month, whatever today's is
    one = _month_to_date(team_db_url, in_the_corpus_month)
    assert one > 0
    other = connect(tmp_path / "other.db")  # a second ledger of the same transcripts, another identity
    from mcp_router.ledger import ingest_tree
    ingest_tree(other, tmp_path / "machine0" / "projects", CATALOG)
    sync(other, Config(team_db_url=team_db_url, user="alice-too@example.com", machine="desktop"))
    assert _month_to_date(team_db_url, in_the_corpus_month) == pytest.approx(one, abs=1e-9)


@contextmanager
def _readme_writers(team_db_url: str, count: int) -> Iterator[list[str]]:
    """The README's team-roles SQL with ``count`` writers: their names (login URLs by ``user``)."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = re.search(r"<!-- team-roles:start -->\n```sql\n(.*?)```", readme, re.S)
    assert block is not None
    suffix = uuid.uuid4().hex[:8]
    names = [f"w{n}_{suffix}@example.com" for n in range(count)]
    sql = (block.group(1).replace("mcp_writer", f"mcp_writer_{suffix}").replace("mcp_reader", f"mcp_reader_{suffix}")
           .replace("ROLE reports", f"ROLE reports_{suffix}"))
    sql = sql.replace('CREATE ROLE "alice@example.com"', "\n".join(
        f'CREATE ROLE "{name}" LOGIN IN ROLE mcp_writer_{suffix};' for name in names[1:])
        + f'\nCREATE ROLE "{names[0]}"')
    team_connect(Config(team_db_url=team_db_url)).close()
    with psycopg.connect(team_db_url, autocommit=True) as owner:
        owner.execute(sql)
    try:
        yield [make_conninfo(**{**conninfo_to_dict(team_db_url), "user": name}) for name in names]
    finally:
        everyone = ", ".join([*(f'"{n}"' for n in names), f"reports_{suffix}", f"mcp_writer_{suffix}",
                              f"mcp_reader_{suffix}"])
        with psycopg.connect(team_db_url, autocommit=True) as owner:
            owner.execute(f"DROP OWNED BY {everyone}")
            owner.execute(f"DROP ROLE {everyone}")


def test_two_writers_delegating_at_once_never_overspend_the_team_cap(tmp_path: Path, team_db_url: str) -> None:
    from psycopg.conninfo import conninfo_to_dict

    with _readme_writers(team_db_url, 2) as urls:
        with psycopg.connect(team_db_url, autocommit=True) as owner:
            owner.execute("INSERT INTO settings (key, value) VALUES (%s, '1.0')", (budget.CAP_SETTING,))
        for n in range(2):
            ledger_id(connect(tmp_path / f"w{n}.db"))  # each writer's ledger, made before the race

        def delegate(n: int) -> str:
            who = n % 2
            config = Config(team_db_url=urls[who], user=conninfo_to_dict(urls[who])["user"], machine=f"m{who}")
            try:
                TeamBudget(connect(tmp_path / f"w{who}.db"), config).reserve(
                    n, 0.3, model="claude-haiku-4-5", delegation_id=f"d{n}", ttl_seconds=600)
            except budget.BudgetExceeded:
                return "refused"
            return "held"

        with ThreadPoolExecutor(12) as pool:
            outcomes = list(pool.map(delegate, range(12)))
    assert outcomes.count("held") == 3  # 3 x 0.3 <= 1.0 < 4 x 0.3
    assert _month_to_date(team_db_url) == pytest.approx(0.9)


def test_a_writer_waiting_on_the_owners_upgrade_goes_on_once_it_is_done(tmp_path: Path, team_db_url: str) -> None:
    # The writer saw m004 pending, waited for the migration lock the owner held, then tried CREATE TABLE IF NOT
    # EXISTS schema_migrations, which a writer may not run even when the table is there: "needs migrating".
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    with _client_at_m003():
        team_connect(Config(team_db_url=team_db_url)).close()
    name = f"probe_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(team_db_url, autocommit=True) as pg:
        pg.execute(f"CREATE ROLE {name} LOGIN")
        pg.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {name}")
    owner = psycopg.connect(team_db_url)
    try:
        owner.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
        outcome: list[object] = []
        as_writer = make_conninfo(**{**conninfo_to_dict(team_db_url), "user": name})
        writer = threading.Thread(target=lambda: outcome.append(_try_connect(as_writer)))
        writer.start()
        time.sleep(1.0)  # the writer has seen m004 pending and waits on the lock
        for migration, sql in team.MIGRATIONS[M003:]:
            owner.execute(sql)
            owner.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (migration,))
        owner.commit()
        writer.join(30)
    finally:
        owner.close()
        with psycopg.connect(team_db_url, autocommit=True) as pg:
            pg.execute(f"DROP OWNED BY {name}")
            pg.execute(f"DROP ROLE {name}")
    assert outcome == ["ok"]


def _try_connect(url: str) -> object:
    try:
        team_connect(Config(team_db_url=url)).close()
    except team.TeamDBError as exc:
        return str(exc)
    return "ok"


def test_no_writer_makes_the_team_month_to_date_infinite(team_db_url: str) -> None:
    team_connect(Config(team_db_url=team_db_url)).close()
    with psycopg.connect(team_db_url, autocommit=True) as pg:
        try:
            pg.execute('INSERT INTO cost_records ("user", machine, ledger_id, local_id, ts, cost_usd, state)'
                       " VALUES ('mallory', 'm', 'l', 1, extract(epoch from now()), 'Infinity', 'settled')")
        except psycopg.errors.CheckViolation:
            pass
    assert math.isfinite(_month_to_date(team_db_url))


def test_a_delegation_planted_under_anothers_id_does_not_double_their_ratings(tmp_path: Path,
                                                                            team_db_url: str) -> None:
    # Before m004 a delegation id was one row in the team database; now each user has its own, and the report
    # joined a rating to every delegation of that id: a writer copying another's ids counted their ratings twice.
    from mcp_router.report import ReportSpec, build_report
    from mcp_router.team import TeamConnection

    bob = Config(team_db_url=team_db_url, user="bob@example.com", machine="laptop")
    conn = connect(tmp_path / "bob.db")
    ts = 1795000000.0  # 2026-11-18
    conn.execute("INSERT INTO delegations (id, ts, category, model, outcome) VALUES ('d-bob', ?, 'summarize',"
                 " 'claude-haiku-4-5', 'ok')", (ts,))
    conn.execute("INSERT INTO feedback (delegation_id, ts, category, rating) VALUES ('d-bob', ?, 'summarize',"
                 " 'bad')", (ts + 60,))
    sync(conn, bob)
    with psycopg.connect(team_db_url, autocommit=True) as pg:  # bob's delegation ids are seen by all writers
        pg.execute("INSERT INTO delegations (\"user\", machine, ledger_id, id, ts, category, outcome)"
                   " VALUES ('mallory', 'm', 'x', 'd-bob', %s, 'summarize', 'ok')", (ts,))
    spec = ReportSpec.parse("2026-11-01", "2026-11-30", "UTC", "model")
    team_report = build_report(TeamConnection(team_connect(bob)), spec, CATALOG, Config())
    local = build_report(conn, spec, CATALOG, Config())
    rated = [(p["rated"], p["bad"]) for r in (team_report, local) for p in r["quality_over_time"]["periods"]
             if p["rated"]]
    assert rated == [(1, 1), (1, 1)]


@pytest.mark.xfail(strict=True, reason="not fixed: a sync under the old name still running when the renamed user's"
                   " sync copied the marks sends the same rows under both names (the copy is taken once, outside the"
                   " per-ledger lock). Rare: a rename during a background sync")
def test_a_rename_during_a_sync_under_the_old_name_sends_nothing_twice(tmp_path: Path, team_db_url: str) -> None:
    from mcp_router import sync as sync_module

    conn, alice, _ = _machine(tmp_path, 0, team_db_url, sessions=1)
    sync(conn, alice)
    record_cost(conn, alice, CATALOG, "claude-haiku-4-5", Usage(input_tokens=10, output_tokens=5))
    bob = _rename(alice, "bob@example.com")
    table = next(t for t in sync_module.TABLES if t.name == "cost_records")
    pg = team_connect(bob)
    try:
        bob_owner = (bob.user, bob.machine, ledger_id(conn))
        sync_module._continue_as(conn, pg, bob_owner)  # bob's sync starts: the marks as they are now
        alice_owner = (alice.user, alice.machine, ledger_id(conn))
        sync_module._send_new(conn, pg, table, alice_owner, 100)  # alice's sync, begun before, sends the record
        sync_module._send_new(conn, pg, table, bob_owner, 100)  # bob's goes on
    finally:
        pg.close()
    assert _counts(team_db_url)["cost_records"] == _local_counts(conn)["cost_records"]


def test_an_upgrade_while_old_and_new_clients_sync_loses_and_doubles_nothing(tmp_path: Path,
                                                                             team_db_url: str) -> None:
    # A real client from before m004 (main at da1ad17, from git) syncing in a loop while the owner upgrades.
    import os
    import subprocess
    import sys

    old = tmp_path / "old"
    old.mkdir()
    repo = Path(__file__).resolve().parents[1]
    archive = subprocess.run(["git", "-C", str(repo), "archive", "da1ad17", "mcp_router"], capture_output=True)
    if archive.returncode:
        pytest.skip("no git history here to take the client from before m004")
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
    machines = [_machine(tmp_path, n, team_db_url, sessions=3) for n in range(2)]
    # The old client refuses a ledger a newer mcp-router has migrated (local schema 14 on): each ledger is marked as
    # the old client's own would be until the upgraded client syncs it (the tables it does not know it never reads).
    for conn, _, _ in machines:
        conn.execute("PRAGMA user_version = 13")

    def old_sync(n: int) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYTHONPATH": str(old), "MCP_ROUTER_TEAM_DB_URL": team_db_url,
               "MCP_ROUTER_USER": machines[n][1].user, "MCP_ROUTER_MACHINE": machines[n][1].machine}
        return subprocess.run([sys.executable, "-m", "mcp_router", "sync", "--db", str(machines[n][2])],
                              env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)

    first = old_sync(0)
    assert first.returncode == 0, first.stderr
    with psycopg.connect(team_db_url) as pg:
        assert pg.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == M003
    for n, (conn, config, _) in enumerate(machines):
        record_cost(conn, config, CATALOG, "claude-haiku-4-5", Usage(input_tokens=1000 * (n + 1), output_tokens=5))
    outcomes: list[subprocess.CompletedProcess] = []
    olds = [threading.Thread(target=lambda: outcomes.extend(old_sync(1) for _ in range(3))) for _ in range(2)]
    for thread in olds:
        thread.start()
    machines[0][0].execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    sync(machines[0][0], machines[0][1])  # the owner's upgraded client: migrates, then syncs
    for thread in olds:
        thread.join(300)
    for done in outcomes:  # each old sync either went through before the upgrade or was refused in one line
        assert done.returncode == 0 or ("upgrade it" in done.stderr and len(done.stderr.strip().splitlines()) == 1), \
            done.stderr
    assert any(done.returncode for done in outcomes)  # the upgrade did land while they ran
    machines[1][0].execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    sync(machines[1][0], machines[1][1])  # machine 1 upgrades too
    expected = {t: sum(_local_counts(conn)[t] for conn, _, _ in machines) for t in _local_counts(machines[0][0])}
    assert _counts(team_db_url) == expected
    from datetime import UTC, datetime

    local_spend = sum(budget.month_to_date_usd(conn, datetime.now(UTC)) for conn, _, _ in machines)
    assert _month_to_date(team_db_url) == pytest.approx(local_spend, abs=1e-9)


def test_a_writer_posing_as_anothers_renamed_ledger_takes_nothing_of_theirs(tmp_path: Path,
                                                                           team_db_url: str) -> None:
    from psycopg.conninfo import conninfo_to_dict

    from mcp_router.store import set_setting
    from mcp_router.sync import LEDGER_SETTING, SYNCED_AS_SETTING

    with _readme_writers(team_db_url, 2) as (as_bob, as_mallory):
        bob_name, mallory_name = (conninfo_to_dict(url)["user"] for url in (as_bob, as_mallory))
        conn, _, _ = _machine(tmp_path, 0, team_db_url, sessions=1)
        record_cost(conn, Config(), CATALOG, "claude-haiku-4-5", Usage(input_tokens=10, output_tokens=5))
        bob = Config(team_db_url=as_bob, user=bob_name, machine="laptop")
        sync(conn, bob)
        with psycopg.connect(team_db_url) as pg:
            marks = pg.execute("SELECT * FROM sync_state ORDER BY table_name").fetchall()
        mine = connect(tmp_path / "mallory.db")  # bob's ledger id and name, as if this ledger were his, renamed
        set_setting(mine, LEDGER_SETTING, ledger_id(conn))
        set_setting(mine, SYNCED_AS_SETTING, bob_name)
        sync(mine, Config(team_db_url=as_mallory, user=mallory_name, machine="m"))
        with pytest.raises(team.TeamDBError, match="row-level security"):
            sync(mine, Config(team_db_url=as_mallory, user=bob_name, machine="m"))
        with psycopg.connect(team_db_url) as pg:
            assert pg.execute('SELECT * FROM sync_state WHERE "user" = %s ORDER BY table_name',
                              (bob_name,)).fetchall() == marks
        record_cost(conn, Config(), CATALOG, "claude-haiku-4-5", Usage(input_tokens=20, output_tokens=5))
        assert sync(conn, bob).sent["cost_records"] == 1
        with psycopg.connect(team_db_url) as pg:
            assert pg.execute('SELECT COUNT(*) FROM cost_records WHERE "user" = %s', (bob_name,)).fetchone()[0] == 2
