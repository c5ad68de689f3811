"""docs/benchmarks.md from one run's results (bench/report.py gives the verdicts)."""

from __future__ import annotations

from pathlib import Path

from bench import offboarding
from bench.report import PROCESSES, ratio, targets

NOTES_START, NOTES_END = "<!-- notes:start -->", "<!-- notes:end -->"
DESCRIPTIONS = {
    "echo": "the baseline: nameko RPC `bench_echo.echo(payload)` through `ClusterRpcProxy`, the payload being "
            "the arguments of a `get_client` call; the echo service runs with the services' config.yml. It runs "
            "before and after the API scenarios; ratios use the better of the two",
    "echo_crm": "the same echo through the services' own RPC entrypoint (`crm_common.rpc.rpc`, replies without "
                "publisher confirms): what the CRM's RPC stack does when a method does no work; the *× echo_crm* "
                "column compares with it",
    "get_client": "`GET /api/v1/clients/{id}` for random ids of sampled clients, as the head of the branch "
                  "(who sees all its clients): token check in the gateway, one RPC, one indexed read",
    "search_clients": "`GET /api/v1/clients?q=…` (first page, 50): half surname or company starts of 4–6 letters, "
                      "30% phone fragments written four ways (`1234567`, `916 123`, `8 916 123-45`, `+7916123`), "
                      "20% email starts; as the head",
    "list_deals": "`GET /api/v1/deals?stage_id=&owner_id=` (first page, 50) for random pairs of the 12 stages and "
                  "20 managers; as the head",
    "create_client": "`POST /api/v1/clients`: a new person or company with a fresh phone and email, as one of the "
                     "managers (contact de-duplication, contacts, timeline entry, outbox event)",
    "move_deal": "`POST /api/v1/deals/{id}/stage`: each worker moves its own 100 open deals, one after the other, "
                 "to the next open stage, as their manager; 409s would mean two moves of one deal collided",
    "create_task": "`POST /api/v1/tasks`: a manager sets themself a task about one of their own clients, due in a "
                   "week, with a three-step checklist (gateway directory, `clients.get_client` over RPC to check the "
                   "client, the task row, a `task_created` event in the outbox)",
    "report_client_base": "`GET /api/v1/reports/client-base` for the last month, quarter and year, as the head "
                          "(read model filled by `crm-reports rebuild` from the seeded clients)",
    "report_funnel": "`GET /api/v1/reports/funnel?pipeline_id=` for each pipeline over the last month, quarter and "
                     "year, for all owners and for three managers (`owner_id=`), as the head",
    "report_plan": "`GET /api/v1/reports/plan?month=` for the last three months, as the head",
    "report_channels": "`GET /api/v1/reports/channels` for the last month, quarter and year, as the head",
    "report_managers": "`GET /api/v1/reports/managers?month=` for the last three months, as the head",
    "report_scripts": "`GET /api/v1/reports/scripts` for the last month, quarter and year, as the head",
}
TITLES = {
    "echo": "Baseline: raw nameko RPC (echo)",
    "echo_crm": "Second baseline: echo through the services' RPC entrypoint (echo_crm)",
    "get_client": "GET /clients/{id}",
    "search_clients": "GET /clients?q=",
    "list_deals": "GET /deals?stage_id=&owner_id=",
    "create_client": "POST /clients",
    "move_deal": "POST /deals/{id}/stage",
    "create_task": "POST /tasks",
    "report_client_base": "GET /reports/client-base",
    "report_funnel": "GET /reports/funnel",
    "report_plan": "GET /reports/plan",
    "report_channels": "GET /reports/channels",
    "report_managers": "GET /reports/managers",
    "report_scripts": "GET /reports/scripts",
}

def write(results: dict, path: Path) -> None:
    notes = _keep_notes(path)
    out: list[str] = []
    add = out.append
    m = results["machine"]
    add("# Benchmarks\n")
    command = {"quick": "python -m bench --quick", "reliability": "python -m bench --reliability only",
               "webhooks": "python -m bench --webhooks only"}
    add(f"Written by `{command.get(results['mode'], 'make bench')}` "
        f"(bench/) on {results['started_at']} at commit {m['commit'] or 'unknown'}; "
        "raw numbers in `bench/results/` (not in git). Run it again to refresh this page; the notes section is kept.\n")
    add("`make bench` takes about 50 minutes (the reports' rebuild of 1,000,000 deals about 10 of them, the "
        "reliability part 5: `--reliability only` runs it alone, `--reliability off` skips it; the replicas 3, with "
        "four restarts of the CRM; the outgoing webhooks 2, `--webhooks only|off`); "
        "`.venv/bin/python -m bench --quick` (5,000 clients, 20,000 deals, 3 s "
        "per run, report in bench/results/) about 5. `--reuse` skips the reset and seeding, `--scenarios`, "
        "`--concurrency` and `--scans` pick a subset (`python -m bench --help`); `CRM_BENCH_ID=x` keeps a "
        "run's databases and vhost (`crm_bench_x_*`, `crm-bench-x`) apart from another's on the same machine.\n")
    add("## Targets\n")
    add("| target | goal | measured | verdict | what the run shows |")
    add("|---|---|---|---|---|")
    for row in targets(results):
        add(f"| {row['target']} | {row['goal']} | {row['measured']} | **{row['verdict']}** | {row['note']} |")
    add("")
    add(NOTES_START)
    add(notes)
    add(NOTES_END + "\n")
    add("## Machine\n")
    add("| | |\n|---|---|")
    packages = ", ".join(f"{k} {v}" for k, v in m["packages"].items())
    for label, value in (("CPU", f"{m['cpu']}, {m['cores']} cores"), ("RAM", f"{m['ram_gib']} GiB"), ("OS", m["os"]),
                         ("Python", m["python"]), ("PostgreSQL", m["postgresql"]), ("RabbitMQ", m["rabbitmq"]),
                         ("Packages", packages), ("Load average at start", " / ".join(map(str, m["load_average"])))):
        add(f"| {label} | {value} |")
    add("")
    _method(results, add)
    _scenarios(results, add)
    _replicas(results, add)
    _audit(results, add)
    _resources(results, add)
    _reports(results, add)
    _stuck(results, add)
    for line in backup_section(results):
        add(line)
    _reliability(results, add)
    _webhooks(results, add)
    for line in offboarding.section(results.get("offboarding")):
        add(line)
    _overdue(results, add)
    _imports(results, add)
    _plans(results, add)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out).rstrip() + "\n", encoding="utf-8")


def _keep_notes(path: Path) -> str:
    if path.exists():
        text = path.read_text(encoding="utf-8")
        if NOTES_START in text and NOTES_END in text:
            return text.split(NOTES_START, 1)[1].split(NOTES_END, 1)[0].strip("\n")
    return "## Notes\n\n(Findings written by hand go here, between the notes markers; regenerating keeps them.)"


def _method(results: dict, add) -> None:
    size, data, seed = results["size"], results.get("data", {}), results.get("seed")
    add("## Method\n")
    add("- **System under test**: started by `scripts/run.py` exactly as `make run` starts it (one process per service "
        "and the gateway, nameko `max_workers` 10, log level INFO with the access log), on PostgreSQL with its own "
        "databases `crm_bench_*` (dropped and recreated at the start) and its own RabbitMQ vhost `crm-bench`; rate "
        "limit off; the stuck-deal timer pushed out of the way (the benchmark runs the scan itself).")
    add(f"- **Data**: {data.get('clients', 0):,} clients ({data.get('client_contacts', 0):,} contacts, "
        f"{data.get('timeline_entries', 0):,} timeline entries) and {data.get('deals', 0):,} deals "
        f"({data.get('stage_history', 0):,} stage visits; {data.get('open_deals', 0):,} open, "
        f"{data.get('open_deals_past_due', 0):,} of them past their stage's max_days) in one branch with a head and "
        "20 managers and two pipelines of four timed open stages plus won and lost, created through the API. Names "
        "come from Faker ru_RU, phones are +7 9xx mobiles, emails are transliterated names; clients and deals are "
        "written with COPY, secondary indexes built afterwards, then VACUUM ANALYZE.")
    if seed:
        add(f"- **Seeding took** {seed['clients']['total_s']} s for the clients and {seed['deals']['total_s']} s for "
            f"the deals (COPY {seed['deals']['copy_s']} s, indexes {seed['deals']['indexes_s']} s).")
    add(f"- **Load**: closed loop: each worker sends its next request when the previous one answered. Workers are "
        f"threads spread over {results['load_processes']} load-generator processes (one when there is one worker), "
        "each with its own keep-alive `http.client` connection or its own `ClusterRpcProxy`; the baseline and the "
        f"API runs use the same processes, threads and timing. Each run warms up {size['warmup_s']:g} s, then "
        f"measures {size['duration_s']:g} s: req/s counts requests answered with 2xx in that window, latencies are "
        "theirs (client side, so they include the load generator's own queueing), errors are other answers or "
        "exceptions, 409s are counted apart.")
    add("- **One machine**: the load generator, RabbitMQ, PostgreSQL and the services share its cores. The resources "
        "table gives each one's CPU in cores during the measured window (1.00 = a whole core, the most a "
        "single-threaded eventlet process can use; run.py relays every log line of the services; *other* is what "
        "processes outside the benchmark used, e.g. a test run: PostgreSQL and RabbitMQ count everyone's work; "
        "*iowait* is time the cores sat idle waiting on the disk) and the peak RSS sampled every 0.2 s.")
    add("- **Who calls**: reads as the head of the branch (sees the whole branch); writes as managers.")
    if results.get("settled_s") is not None:
        add(f"- **Settling**: after seeding, a CHECKPOINT in each database, then up to 90 s for the machine to go idle "
            f"(it took {results['settled_s']} s), so the seed's checkpoints and autovacuum do not run during the "
            "measurements.")
    if results.get("pairs"):
        add(f"- **Throughput target**: measured as {len(results['pairs'])} pairs of runs back to back (echo at 10 "
            "workers, then GET /clients/{id} at 10 workers); the target takes the median ratio and the median p99 of "
            "the pairs, because two runs minutes apart on a shared virtual machine differ by up to a third.")
    for incident in results.get("incidents", []):
        add(f"- **Incident**: {incident}.")
    add("")


def _scenarios(results: dict, add) -> None:
    add("## Results\n")
    for scenario, title in TITLES.items():
        runs = [r for r in results.get("runs", []) if r["scenario"] == scenario]
        if not runs:
            continue
        add(f"### {title}\n")
        add(DESCRIPTIONS[scenario][0].upper() + DESCRIPTIONS[scenario][1:] + ".\n")
        add("| workers | req/s | × echo | × echo_crm | p50 ms | p90 ms | p99 ms | max ms | errors | 409 |")
        add("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in sorted(runs, key=lambda r: (r["concurrency"], r.get("round", 1))):
            x, y = (None, None) if scenario in ("echo", "echo_crm") else (ratio(results, r), ratio(results, r, "echo_crm"))
            workers = f"{r['concurrency']} ({'before' if r.get('round', 1) == 1 else 'after'})" if scenario == "echo" \
                else str(r["concurrency"])
            add(f"| {workers} | {r['rps']:.1f} | {'' if x is None else x} | {'' if y is None else y} | {_v(r['p50_ms'])} | "
                f"{_v(r['p90_ms'])} | {_v(r['p99_ms'])} | {_v(r['max_ms'])} | {r['errors']} | {r['conflicts']} |")
        samples = [s for r in runs for s in r["error_samples"]]
        if samples:
            add(f"\nFirst errors: `{'`, `'.join(samples[:3])}`")
        add("")


def _replicas(results: dict, add) -> None:
    compared = results.get("replicas")
    if not compared:
        return
    add("### GET /clients/{id} with 1 and 2 processes of everything\n")
    add("`scripts/run.py --replicas N` (`make run REPLICAS=N`): N processes of clients, deals and the gateway, the "
        "gateways sharing the port (SO_REUSEPORT). The CRM is restarted between the layouts on the same data, "
        f"which alternate ({', '.join(map(str, compared['layouts']))}); each cell is the median of a layout's rounds "
        "(all rounds in brackets). CPU in cores, every copy of a process added up.\n")
    add("| workers | 1 process: req/s | 2 processes: req/s | ratio | p99 ms (1 → 2) | machine cores (1 → 2) | "
        "other cores (1 → 2) | gateway cores (1 → 2) | clients cores (1 → 2) | errors |")
    add("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in compared["summary"]:
        one, two = row.get(1), row.get(2)
        if not (one and two):
            continue
        rounds = lambda side: ", ".join(f"{r:.0f}" for r in side["rounds"])  # noqa: E731
        add(f"| {row['concurrency']} | {one['rps']:.1f} ({rounds(one)}) | {two['rps']:.1f} ({rounds(two)}) | "
            f"{row['ratio']} | {_v(one['p99_ms'])} → {_v(two['p99_ms'])} | {one['machine_cores']:.2f} → "
            f"{two['machine_cores']:.2f} | {one['other_cores']:.2f} → {two['other_cores']:.2f} | "
            f"{one['cpu_by_service'].get('gateway', 0):.2f} → {two['cpu_by_service'].get('gateway', 0):.2f} | "
            f"{one['cpu_by_service'].get('clients', 0):.2f} → {two['cpu_by_service'].get('clients', 0):.2f} | "
            f"{one['errors'] + two['errors']} |")
AUDIT_TITLE = "## The audit log: GET /clients/{id} and GET /clients?q= with CRM_AUDIT on and off"


def _audit(results: dict, add) -> None:
    compared = results.get("audit")
    if not compared:
        return
    from bench.audit import TARGET, verdict

    add(AUDIT_TITLE + "\n")
    add("Every answer that shows or changes clients appends its audit entry to the gateway's journal (a local file) "
        "and goes; one writer per gateway commits whatever arrived meanwhile in one transaction (the bulk-read "
        "window's upserts and counts, the entries chained under the head's row lock; decisions.md 60). The CRM is "
        "restarted between `CRM_AUDIT=on` and `off` "
        f"on the same data, in the order {', '.join(compared['settings'])}; each cell is the median of a setting's "
        "rounds (all rounds in brackets). As one head of sales reading thousands of distinct clients a minute: the "
        "read cap is off for the benchmark, the alarm at its default. CPU in cores. "
        f"Target: on ÷ off ≥ {TARGET} — **{verdict(compared)}**.\n")
    add("| scenario | workers | audit on: req/s | audit off: req/s | on ÷ off | p50 ms (on / off) | "
        "p99 ms (on / off) | gateway cores (on / off) | postgres cores (on / off) | errors |")
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in compared["summary"]:
        on, off = row.get("on"), row.get("off")
        if not (on and off):
            continue
        rounds = lambda side: ", ".join(f"{r:.0f}" for r in side["rounds"])  # noqa: E731
        add(f"| {TITLES.get(row['scenario'], row['scenario'])} | {row['concurrency']} | {on['rps']:.1f} ({rounds(on)}) | "
            f"{off['rps']:.1f} ({rounds(off)}) | {row.get('ratio')} | {_v(on['p50_ms'])} / {_v(off['p50_ms'])} | "
            f"{_v(on['p99_ms'])} / {_v(off['p99_ms'])} | {on['gateway_cores']:.2f} / {off['gateway_cores']:.2f} | "
            f"{on['postgres_cores']:.2f} / {off['postgres_cores']:.2f} | {on['errors'] + off['errors']} |")
    add("")


def write_audit_section(results: dict, path: Path) -> None:
    """``--audit only``: replace (or add, before the query plans) the audit section of docs/benchmarks.md and
    leave the rest of the page as the last full run wrote it."""
    lines: list[str] = []
    _audit(results, lines.append)
    m = results["machine"]
    lines.insert(1, f"Measured by `python -m bench --audit only` on {results['started_at']} at commit "
                    f"{m['commit'] or 'unknown'} ({results['size']['clients']:,} clients; {m['cores']} cores, "
                    f"load average at start {' / '.join(map(str, m['load_average']))}).\n")
    section = "\n".join(lines).rstrip() + "\n"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if AUDIT_TITLE in text:
        before, rest = text.split(AUDIT_TITLE, 1)
        following = rest.find("\n#")
        after = rest[following + 1:] if following >= 0 else ""
        text = before + section + ("\n" + after if after else "")
    else:
        anchor = "## Query plans of the read scenarios"
        text = text.replace(anchor, section + "\n" + anchor, 1) if anchor in text else text.rstrip() + "\n\n" + section
    path.write_text(text, encoding="utf-8")


def _reports(results: dict, add) -> None:
    reports = results.get("reports")
    if not reports:
        return
    add("## Reports read model\n")
    if "rebuild_s" in reports:  # a run with --reuse keeps the read model it finds (no rebuild)
        add(f"- **Rebuild**: `crm-reports rebuild` read every client, interaction, touchpoint, deal (with its stage "
            f"history), pipeline, user and branch through the services' `export` RPCs and rebuilt the whole read "
            f"model in **{reports['rebuild_s']} s** (`{' / '.join(reports.get('output', [])[-1:])}`). The report runs "
            "above read the model it built.")
    else:
        add("- **Rebuild**: not run (`--reuse`: the read model of an earlier run was kept).")
    lag = reports.get("lag")
    if lag:
        add(f"- **Event lag** from a stage move (its HTTP answer) to `GET /reports/funnel` counting it: p50 "
            f"**{_v(lag['lag_p50_ms'])} ms**, p99 **{_v(lag['lag_p99_ms'])} ms**, max {_v(lag['lag_max_ms'])} ms, "
            f"over {lag['moves']} moves at {lag['rate_achieved']}/s (target {lag['rate_target']}/s) into one pipeline; "
            f"the funnel was polled every {_v(lag['poll_interval_ms'])} ms (the resolution of these numbers), while "
            "the moves ran.")
    add("")


def _resources(results: dict, add) -> None:
    add("### CPU (cores) and peak RSS (MiB) per run\n")
    add("| scenario | workers | gateway | clients | deals | echo | run.py | PostgreSQL | RabbitMQ | load gen | other "
        "| machine | iowait | RSS gateway | RSS clients | RSS deals | RSS echo |")
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results.get("runs", []):
        cpu, rss = r["cpu_cores"], r["peak_rss_mb"]
        load = " + ".join(f"{c:.2f}" for c in r["loadgen"]["cpu_cores"])
        label = r["scenario"] + (" (after)" if r.get("round", 1) > 1 else "")
        add(f"| {label} | {r['concurrency']} | " + " | ".join(_v(cpu.get(n)) for n in PROCESSES)
            + f" | {_v(cpu.get('run.py'))} | {_v(cpu.get('postgres'))} | {_v(cpu.get('rabbitmq'))} | {load} | "
            + f"{_v(cpu.get('other'))} | {_v(cpu.get('machine'))} | {_v(cpu.get('iowait'))} | "
            + " | ".join(_v(rss.get(n)) for n in PROCESSES) + " |")
    add("")


def _imports(results: dict, add) -> None:
    runs = (results.get("imports") or {}).get("runs") or []
    if not runs:
        return
    add("## Imports\n")
    add("`POST /api/v1/imports` as the branch's head, a Windows-1251 file with semicolons as a Russian spreadsheet "
        "writes it (bench/imports.py): a name, one or two phones typed in various ways, an email, tags, a company, a "
        "source, the owner's email for one row in five (round robin for the rest); 10 % duplicates, half of a seeded "
        "client's phone, half of an earlier row's email, skipped (`on_duplicate=skip`). *upload* is until the 202 "
        "(the gateway reads the file twice and hands it to the clients service in chunks of 1,000 rows), *processing* "
        "from there until the import is `done` (batches of 500 rows per transaction). CPU is seconds used during the "
        "import (other services: the rest of the CRM's processes, mostly the consumers of the events; PostgreSQL and "
        "RabbitMQ: all their processes, whoever else uses them; machine: every core busy); "
        "memory the peak RSS sampled every 0.2 s. Each import starts once the consumers have emptied their queues. "
        "The events (one `client_created` per client) are relayed and consumed meanwhile; the last column is how "
        "much later the outbox was empty, and then every consumer's queue (the reports, tasks and webhooks "
        "services had handled every event; the wait stops after 300 s and says what was still queued).\n")
    add("| rows | file MB | upload s | processing s | total s | rows/s | created | skipped | errors | CPU s gateway / "
        "clients / other services / PostgreSQL / RabbitMQ / machine | peak RSS gateway MB | peak RSS clients MB | "
        "events published / consumed s after |")
    add("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    for run in runs:
        cpu, memory = run["cpu_s"], run["memory"]
        add(f"| {run['file']['rows']:,} | {run['file']['bytes'] / 2**20:.1f} | {run['upload_s']} | {run['processing_s']} "
            f"| {run['total_s']} | {run['rows_per_s']:,} | {run['created']:,} | {run['skipped']:,} | "
            f"{run['rows_with_errors']:,} | {cpu.get('gateway')} / {cpu.get('clients')} / {cpu.get('other services')} / "
            f"{cpu.get('postgres')} / "
            f"{cpu.get('rabbitmq')} / {cpu.get('machine')} | "
            f"{memory['gateway']['before_mb']} → {memory['gateway']['peak_mb']} | "
            f"{memory['clients']['before_mb']} → {memory['clients']['peak_mb']} | {run['events_published_s_after_done']} / "
            f"{run.get('events_consumed_s_after_done', '–')}{_left(run)} |")
    add("")


def _left(run: dict) -> str:
    left = run.get("events_left_unconsumed")
    return f" ({left:,} events still queued)" if left else ""


def backup_section(results: dict) -> list[str]:
    """The backup benchmark (bench/backup.py) as markdown lines; empty if it did not run."""
    b = results.get("backup")
    if not b:
        return []
    mib = 2**20
    lines = [
        "## Backups\n",
        f"Data: {results.get('data', {}).get('clients', '?'):,} clients, {results.get('data', {}).get('deals', '?'):,} deals "
        f"({results.get('data', {}).get('stage_history', '?'):,} stage history rows) in {len(b['databases'])} databases "
        f"({', '.join(b['databases'])}). Baseline: `pg_dump --format=custom` of each database to a file, one after the "
        "other, before and after the backup; the faster is the bar. The backup is `crm-backup run`: snapshots, "
        "pg_dump streamed through AES-256-GCM into one archive, row counts and content checksums of every table, "
        "the manifest (no off-site target in the benchmark).\n",
        "| measure | value | target |",
        "|---|---:|---|",
        f"| plain pg_dump of every database | {b['pg_dump']['seconds']} s (before {b['pg_dump']['before']['seconds']} s, "
        f"after {b['pg_dump']['after']['seconds']} s) | baseline |",
        f"| full backup (`crm-backup run`) | {b['backup']['seconds']} s = **{b['ratio']} × pg_dump** | ≤ 1.5 × "
        f"({'PASS' if b['ratio'] is not None and b['ratio'] <= 1.5 else 'MISS'}) |",
        f"| archive size | {b['archive_bytes'] / mib:.1f} MiB (plain dumps {b['pg_dump']['bytes'] / mib:.1f} MiB) | reported |",
        f"| verification (`crm-backup verify`: decrypt, restore into scratch databases, compare every table) | "
        f"{b['verify']['seconds']} s | reported |",
    ]
    if "restore" in b:
        lines.append(f"| restore of every database (`crm-backup restore --yes`: scratch, compare, swap) | "
                     f"{b['restore']['seconds']} s | reported |")
    lines += [
        f"| peak RSS of the backup process | {b['backup']['peak_rss_mb']} MiB (its pg_dump: "
        f"{b['backup']['peak_rss_children_mb']} MiB); verify {b['verify']['peak_rss_mb']} MiB | reported |",
        "",
    ]
    return lines


def _stuck(results: dict, add) -> None:
    stuck = results.get("stuck")
    if not stuck:
        return
    add("## Stuck-deal scan\n")
    add(f"`deals.check_stuck_deals()` called over RPC (as an operator would; batches of {stuck['batch']}) against "
        f"the {results.get('data', {}).get('deals', 0):,} deals. Before each pass {stuck['newly_stuck']:,} open deals "
        "reach their stage's max_days within the last 50 minutes; every other past-due deal was raised before, as "
        f"the timer's previous ticks would have (a first, unmeasured pass raised the {stuck.get('caught_up', 0):,} "
        "that came due since the seed). A pass selects the due deals, marks them, and writes one validated "
        "`deal_stuck` event per deal to the outbox, committing per batch; the running services relay and handle "
        "the events (the clients timeline; the tasks service makes a task and a notice per deal), and the next pass "
        "waits until they are done. *scan s* is the service's own measure (`took_s`), *round trip* adds the RPC.\n")
    add("| pass | newly stuck | raised | scan s | round trip s | due query alone ms |")
    add("|---:|---:|---:|---:|---:|---:|")
    for index, p in enumerate(stuck["passes"], start=1):
        add(f"| {index} | {p['armed']} | {p['raised']} | {p['scan_s']:.3f} | {p.get('round_trip_s', 0):.3f} | "
            f"{p['due_query_ms']:.1f} |")
    empty = stuck.get("empty_pass")
    if empty:
        add(f"| nothing new due | 0 | {empty['raised']} | {empty['scan_s']:.3f} | | |")
    add("")
    for plan in stuck.get("due_query_plan", [])[:1]:
        add("Plan of the due query (first batch):\n")
        add("```\n" + plan["plan"] + "\n```\n")


def _reliability(results: dict, add) -> None:
    measured = results.get("reliability")
    if not measured:
        return
    add("## Reliability\n")
    cost = measured.get("command_log")
    if cost and cost.get("error"):
        add(f"**The command log on `POST /clients`** was not measured: {cost['error']}\n")
    elif cost:
        add(f"**The command log on `POST /clients`.** Every write claims its request id in the service's `command_log` "
            "and stores its result there in its own transaction (decisions.md 23): two more statements per write. "
            f"Measured at {cost['workers']} workers as in the create_client scenario (managers creating clients "
            "with fresh phones and emails), on a CRM of its own (one process per service, a private RabbitMQ node, "
            "databases `crm_bench_rec_*` holding only what the runs create), alternately with the command log and "
            "without it (`CRM_COMMAND_LOG=off`, a switch for this measurement only), each run on a freshly started "
            "system. Req/s depends on what else the machine runs (*other*: CPU cores used outside the benchmark); "
            "the clients process's CPU per write hardly does, and is the better measure of the cost.\n")
        add("| pair | command log | req/s | p50 ms | p90 ms | p99 ms | errors | clients CPU ms per write "
            "| gateway CPU ms per write | PostgreSQL CPU | other CPU |")
        add("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in cost["runs"]:
            cpu = r.get("cpu_cores") or {}
            add(f"| {r['pair']} | {r['arm']} | {r['rps']:.1f} | {_v(r['p50_ms'])} | {_v(r['p90_ms'])} | "
                f"{_v(r['p99_ms'])} | {r['errors']} | {_v(r.get('clients_cpu_ms'))} | {_v(r.get('gateway_cpu_ms'))} | "
                f"{_v(cpu.get('postgres'))} | {_v(cpu.get('other'))} |")
        if cost.get("ratio_median") is not None:
            add(f"\nWith ÷ without, throughput: {', '.join(f'{x:.2f}' for x in cost['ratios'])} (median "
                f"{cost['ratio_median']:.2f}); clients CPU per write: "
                f"{', '.join(f'{x:.2f}' for x in cost.get('cpu_ratios') or [])} (median "
                f"{_v(cost.get('cpu_ratio_median'))}).\n")
    recovery = measured.get("recovery")
    if recovery and recovery.get("error"):
        add(f"**Broker recovery** was not measured: {recovery['error']}\n")
    elif recovery:
        add(f"**After a broker outage.** The CRM (started by `scripts/run.py --replicas N`, no load) on a RabbitMQ "
            f"node of its own; the node's application is stopped for {recovery['outage_s']:g} s "
            "(`rabbitmqctl stop_app`: every connection closed, transient messages and non-durable queues gone) and "
            "started again. Seconds from the start until `/health` is ok, until every replica consumes its RPC queue "
            "again (consumer count of `rpc-clients` and `rpc-deals`), and until a `POST /clients` succeeds; "
            "*every service* is the later of the first two.\n")
        add("| replicas | trial | /health ok s | every replica consuming s | first write s | every service s "
            "| processes exited in the outage |")
        add("|---:|---:|---:|---:|---:|---:|---:|")
        for count, trials in recovery["by_replicas"].items():
            for t in trials:
                add(f"| {count} | {t['trial']} | {_v(t['health_s'])} | {_v(t['consumers_s'])} | {_v(t['write_s'])} | "
                    f"{_v(t['every_service_s'])} | {t['exits_during_outage']} |")
        add("")
def _webhooks(results: dict, add) -> None:
    measured = results.get("webhooks")
    if not measured:
        return
    add("## Outgoing webhooks\n")
    if measured.get("error"):
        add(f"Not measured: {measured['error']}\n")
        return
    add("On a CRM of its own (`scripts/run.py` with `CRM_SERVICES=webhooks`: one webhooks process with its 20 "
        "delivery workers, and the gateway), vhost `crm-bench-hooks`, databases `crm_bench_hooks_*`; `client_created` "
        "events published straight to the `clients.events` exchange, as the clients service's outbox relay publishes "
        "them; the receivers are HTTP servers on 127.0.0.1 in the benchmark's process (bench/webhooks.py).\n")
    add("**Deliveries per second** to a fast receiver (answers 204 at once). N webhooks on the one receiver; "
        "deliveries/s = all deliveries ÷ (first event published → last delivery received). A webhook has at most one "
        "delivery in flight (its order), so one webhook is sequential and ten go in parallel. Baseline, same run: "
        "plain POSTs of the same body to the same receiver from N threads back to back.\n")
    add("| webhooks | events | deliveries | took s | deliveries/s | baseline POSTs/s | × baseline "
        "| most requests in flight at the receiver |")
    add("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in measured.get("throughput", []):
        add(f"| {row['webhooks']} | {row['events']} | {row['deliveries']} | {row['took_s']} | {row['deliveries_per_s']} "
            f"| {row['baseline_posts_per_s']} | {_v(row['ratio'])} | {row['max_in_flight_per_receiver']} |")
    hanging = measured.get("hanging")
    if hanging:
        add(f"\n**A healthy webhook beside a hanging receiver.** {hanging['rate_per_s']} events/s for "
            f"{hanging['seconds']:g} s; delay = event published → delivery received by the healthy webhook's "
            "receiver. In the second run another webhook takes the same events and its receiver accepts each request "
            "and never answers (each attempt holds a worker until the 10 s timeout, then waits for its retry).\n")
        add("| healthy webhook | events | p50 ms | p99 ms | max ms | requests the hanging receiver got |")
        add("|---|---:|---:|---:|---:|---:|")
        for arm, row in hanging["arms"].items():
            add(f"| {arm} | {row['events']} | {row['p50_ms']} | {row['p99_ms']} | {row['max_ms']} | "
                f"{_v(row['hanging_requests'])} |")
        add(f"\np99 with ÷ without the hanging receiver: {_v(hanging['p99_ratio'])}.\n")


def _overdue(results: dict, add) -> None:
    overdue = results.get("overdue")
    if not overdue:
        return
    add("## Overdue-task scan\n")
    add(f"`tasks.check_overdue_tasks()` called over RPC (batches of {overdue['batch']}) against the "
        f"{results.get('data', {}).get('tasks', 0):,} tasks ({results.get('data', {}).get('open_tasks', 0):,} open). "
        f"Before each pass {overdue['newly_overdue']:,} open tasks reach their deadline within the last 50 minutes "
        f"(a first, unmeasured pass found the {overdue.get('caught_up', 0):,} that came due since the seed). A pass "
        "selects the due tasks (`FOR UPDATE SKIP LOCKED`), marks them overdue in one UPDATE per batch, inserts their "
        "penalties (unique per task), writes `task_overdue` and `penalty_recorded` to the outbox and a notice for "
        "the assignee and the branch's head, and commits per batch. *scan s* is the service's own measure.\n")
    add("| pass | newly overdue | found | scan s | round trip s | settled after s |")
    add("|---:|---:|---:|---:|---:|---:|")
    for index, p in enumerate(overdue["passes"], start=1):
        add(f"| {index} | {p['armed']} | {p['overdue']} | {p['scan_s']:.3f} | {p['round_trip_s']:.3f} | "
            f"{p['settled_after_s']} |")
    empty = overdue.get("empty_pass")
    if empty:
        add(f"| nothing new due | 0 | {empty['overdue']} | {empty['scan_s']:.3f} | | |")
    add("")
    if overdue.get("due_query_plan"):
        add("Plan of the due query (first batch):\n")
        add("```\n" + overdue["due_query_plan"] + "\n```\n")


def _plans(results: dict, add) -> None:
    plans = results.get("plans")
    if not plans:
        return
    add("## Query plans of the read scenarios\n")
    add("The services' repository code run against the bench databases as the head, without HTTP, RPC or "
        "serialisation; plans from EXPLAIN (ANALYZE, BUFFERS).\n")
    t = plans.get("search_timings")
    if t:
        add(f"`GET /clients?q=`: the search for {t['terms']:,} of the load test's terms took p50 {t['p50_ms']} ms, "
            f"p90 {t['p90_ms']} ms, p99 {t['p99_ms']} ms, max {t['max_ms']} ms; {t['over_50_ms']} terms over 50 ms. "
            "The plans of the typical term and of the three slowest:\n")
    for entry in plans.get("search", []):
        times = ", ".join(f"{p['execution_ms']:.2f} ms" for p in entry["plans"])
        add(f"<details><summary>{entry.get('which', '')} <code>?q={entry['q']}</code> (searches "
            f"<code>{entry['term']}</code>): {times}</summary>\n")
        for p in entry["plans"]:
            add("```\n" + p["plan"] + "\n```")
        add("</details>\n")
    deals = plans.get("list_deals")
    if deals:
        times = ", ".join(f"{p['execution_ms']:.2f} ms" for p in deals["plans"])
        add(f"<details><summary><code>GET /deals?stage_id=&owner_id=</code>: {times}</summary>\n")
        for p in deals["plans"]:
            add("```\n" + p["plan"] + "\n```")
        add("</details>\n")


def _v(value) -> str:
    if value is None:
        return "–"
    if not isinstance(value, float):
        return str(value)
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"
