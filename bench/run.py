"""`make bench`: run every bench/bench_*.py side by side with its peer, print one table, keep the figures.

Each module's ``run()`` executes in its own child process (this file, re-invoked with ``--child``), so
a bench that crashes, leaves a server running or hangs past ``--timeout`` costs one error row, never
the whole run. Results go to bench/results.json and into the figures section of bench/README.md.

    .venv/bin/python bench/run.py                 # everything
    .venv/bin/python bench/run.py --only serve    # bench/bench_serve.py alone (also: bench_serve)
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
RESULTS = BENCH_DIR / "results.json"
README = BENCH_DIR / "README.md"
LOGS = BENCH_DIR / "out" / "logs"
FIGURES_START = "<!-- figures:start (written by bench/run.py; edits inside are overwritten) -->"
FIGURES_END = "<!-- figures:end -->"
RUN_STARTED_ENV = "TLSKIT_BENCH_RUN_STARTED"
DEFAULT_TIMEOUT = 1200.0  # seconds per module; ACME and serve benches start real servers


@dataclass
class ModuleOutcome:
    """What one bench module produced: its rows, or the one-line error that stopped it."""

    name: str
    seconds: float
    rows: list[dict] = field(default_factory=list)
    error: str | None = None


# --- discovery and isolation ----------------------------------------------------------------


def discover(directory: Path = BENCH_DIR) -> list[str]:
    """Module names (``bench_cli``...) in a stable order: CLI first, the rest alphabetically."""
    names = sorted(p.stem for p in directory.glob("bench_*.py"))
    return sorted(names, key=lambda n: (n != "bench_cli", n))


def module_name(only: str) -> str:
    stem = Path(only).stem
    return stem if stem.startswith("bench_") else f"bench_{stem}"


def run_module(name: str, timeout: float) -> ModuleOutcome:
    """Run ``bench.<name>.run()`` in a child process and collect its rows or its error."""
    start = time.perf_counter()
    with tempfile.NamedTemporaryFile("r", suffix=".json", prefix=f"{name}.", delete=False) as handle:
        result_path = Path(handle.name)
    LOGS.mkdir(parents=True, exist_ok=True)
    log_path = LOGS / f"{name}.log"
    try:
        # The bench's own output (progress, tracebacks) goes to its log, so stdout is just the table.
        with log_path.open("w") as log:
            child = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--child", name, "--result-file", str(result_path)],
                cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # so a timeout can stop the servers the bench started, too
            )
            try:
                child.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(child)
                child.wait()
                return ModuleOutcome(name, time.perf_counter() - start,
                                     error=f"timed out after {timeout:.0f} s (log: {_rel(log_path)})")
        elapsed = time.perf_counter() - start
        stderr = log_path.read_text(errors="replace")
        try:
            document = json.loads(result_path.read_text() or "null")
        except (OSError, ValueError):
            document = None
        if isinstance(document, dict) and document.get("error"):
            return ModuleOutcome(name, elapsed, error=f"{document['error']} (log: {_rel(log_path)})")
        if child.returncode != 0 or not isinstance(document, dict):
            reason = _last_line(stderr) or f"exited with status {child.returncode}"
            return ModuleOutcome(name, elapsed, error=f"{reason} (log: {_rel(log_path)})")
        return ModuleOutcome(name, elapsed, rows=document["rows"])
    finally:
        result_path.unlink(missing_ok=True)


def _kill_group(child: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def child_main(name: str, result_file: Path) -> int:
    """Inside the child: import the module, call run(), write rows (or the error) as JSON."""
    sys.path.insert(0, str(ROOT))
    try:
        module = importlib.import_module(f"bench.{name}")
        results = module.run()
        rows = [_row(name, result) for result in results]
        document: dict = {"rows": rows}
        code = 0
    except BaseException as exc:  # SystemExit from need() included: it names the missing peer
        import traceback

        traceback.print_exc(file=sys.stderr)
        message = str(exc) if isinstance(exc, SystemExit) and not isinstance(exc.code, int) else \
            f"{type(exc).__name__}: {exc}"
        document = {"error": " ".join(message.split())[:300]}
        code = 1
    result_file.write_text(json.dumps(document))
    return code


def _utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _row(module: str, result) -> dict:
    row = result.as_dict() if hasattr(result, "as_dict") else dict(result)
    row["module"] = module
    row["met"] = target_met(row)
    # Every row of one `bench/run.py` invocation carries that run's start time, so rows kept from an
    # earlier `--only` run are told apart from this run's, however long this run takes.
    row["measured"] = os.environ.get(RUN_STARTED_ENV) or _utc_now()
    return row


# --- targets --------------------------------------------------------------------------------

_TARGET = re.compile(r"^\s*(<=|>=|<|>|=)\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z/%]*)")
_UNIT_SCALE = {"ms": 1.0, "s": 1000.0}


def target_met(row: dict) -> bool | None:
    """Whether a row meets its target: ``<= 2x``/``>= 0.5x`` compare the ratio, ``< 150 ms`` the value.

    None when there is no target or it cannot be read.
    """
    match = _TARGET.match(row.get("target") or "")
    if not match:
        return None
    op, number, unit = match.group(1), float(match.group(2)), match.group(3).lower()
    if unit in ("", "x"):
        value = row.get("ratio")
    else:
        value = row.get("tlskit")
        row_unit = (row.get("unit") or "").lower()
        if unit in _UNIT_SCALE and row_unit in _UNIT_SCALE:
            number = number * _UNIT_SCALE[unit] / _UNIT_SCALE[row_unit]
        elif unit != row_unit:
            return None
    if value is None:
        return None
    return {"<=": value <= number, ">=": value >= number, "<": value < number, ">": value > number,
            "=": value == number}[op]


# --- rendering ------------------------------------------------------------------------------


def fmt_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit in ("req/s", "handshakes/s") or abs(value) >= 1000:
        return f"{value:,.0f} {unit}"
    if abs(value) >= 100:
        return f"{value:.0f} {unit}"
    if abs(value) >= 10:
        return f"{value:.1f} {unit}"
    return f"{value:.2f} {unit}"


def fmt_met(met: bool | None) -> str:
    return {True: "yes", False: "NO", None: "-"}[met]


def table_rows(outcomes: list[ModuleOutcome]) -> list[dict]:
    """Flatten outcomes into printable rows; an error becomes one row naming the module."""
    rows = []
    for outcome in outcomes:
        if outcome.error:
            rows.append({"work": f"{outcome.name}: ERROR", "tlskit": "-", "peer": "-", "ratio": "-", "target": "-",
                         "met": "-", "command": outcome.error, "peer_command": ""})
            continue
        for row in outcome.rows:
            unit = row.get("unit", "")
            rows.append({
                "work": row["work"],
                "tlskit": fmt_value(row.get("tlskit"), unit),
                "peer": f"{fmt_value(row.get('peer'), unit)} ({row.get('peer_name', 'peer')})",
                "ratio": f"{row['ratio']:.2f}x" if isinstance(row.get("ratio"), (int, float)) else "-",
                "target": row.get("target") or "-",
                "met": fmt_met(row.get("met")),
                "command": row.get("tlskit_command", ""),
                "peer_command": row.get("peer_command", ""),
            })
    return rows


def print_table(outcomes: list[ModuleOutcome], stream=sys.stdout) -> None:
    """One plain-text table; the peer's command goes on a continuation line under tlskit's."""
    columns = ["work", "tlskit", "peer", "ratio", "target", "met?", "command"]
    rows = table_rows(outcomes)
    keys = ["work", "tlskit", "peer", "ratio", "target", "met"]
    widths = [max([len(columns[i])] + [len(str(r[k])) for r in rows]) for i, k in enumerate(keys)]
    header = "  ".join(c.ljust(w) for c, w in zip(columns, widths)) + "  " + columns[-1]
    print(header, file=stream)
    print("-" * min(len(header) + 40, 200), file=stream)
    for row in rows:
        cells = [str(row[k]).ljust(w) for k, w in zip(keys, widths)]
        print("  ".join(cells) + "  " + (f"tlskit: {row['command']}" if row["peer_command"] else row["command"]),
              file=stream)
        if row["peer_command"]:
            print(" " * (sum(widths) + 2 * len(widths)) + f"peer:   {row['peer_command']}", file=stream)


def markdown_figures(document: dict) -> str:
    """The figures section of bench/README.md, from results.json's document."""
    host = document.get("host", {})
    lines = [
        f"Measured {document.get('generated', '?')} on {host.get('cpus', '?')} CPU(s) "
        f"({host.get('cpu_model', 'unknown CPU')}), {host.get('os', '')}, Python {host.get('python', '?')}, "
        f"{host.get('openssl', 'openssl ?')}. Ratio = tlskit / peer; for times lower is better, for rates higher.",
        "",
        *(["Rows were measured at different times (`--only` runs); each row's time is in results.json.", ""]
          if len({r.get("measured") for r in document.get("results", [])}) > 1 else []),
        "| work | tlskit | peer | ratio | target | met? |",
        "|---|---:|---:|---:|---|---|",
    ]
    commands = []
    for row in document.get("results", []):
        unit = row.get("unit", "")
        lines.append(
            f"| {row['work']} | {fmt_value(row.get('tlskit'), unit)} | {fmt_value(row.get('peer'), unit)} "
            f"({row.get('peer_name', 'peer')}) | {row.get('ratio', 0):.2f}x | {row.get('target') or '-'} "
            f"| {fmt_met(row.get('met'))} |"
        )
        commands.append((row["work"], row.get("tlskit_command", ""), row.get("peer_command", "")))
    for error in document.get("errors", []):
        lines.append(f"| {error['module']}: not measured | - | - | - | - | - |")
    if document.get("errors"):
        lines += ["", "Benches that failed in this run:", ""]
        lines += [f"- `{e['module']}`: {e['error']}" for e in document["errors"]]
    if commands:
        lines += ["", "Commands, as measured:", ""]
        for work, ours, theirs in commands:
            lines.append(f"- {work}: `{ours}` vs `{theirs}`")
    return "\n".join(lines)


def update_readme(document: dict, readme: Path = README) -> bool:
    """Replace the text between the figure markers; returns False when the markers are missing."""
    if not readme.exists():
        return False
    text = readme.read_text()
    start, end = text.find(FIGURES_START), text.find(FIGURES_END)
    if start < 0 or end < start:
        return False
    new = text[: start + len(FIGURES_START)] + "\n" + markdown_figures(document) + "\n" + text[end:]
    readme.write_text(new)
    return True


# --- results document -----------------------------------------------------------------------


def host_facts() -> dict:
    facts = {
        "cpus": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "cpu_model": _cpu_model(),
    }
    if shutil.which("openssl"):
        out = subprocess.run(["openssl", "version"], capture_output=True, text=True, check=False).stdout.strip()
        facts["openssl"] = out
    return facts


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def build_document(outcomes: list[ModuleOutcome], previous: dict | None, only: bool) -> dict:
    """The results.json document. With --only, the other modules' rows from the last run are kept."""
    ran = {o.name for o in outcomes}
    results = [row for o in outcomes for row in o.rows]
    errors = [{"module": o.name, "error": o.error} for o in outcomes if o.error]
    timings = {o.name: round(o.seconds, 1) for o in outcomes}
    if only and previous:
        # Keep the last figures of modules not run now (and still present in bench/).
        keep = set(discover()) - ran
        results = [r for r in previous.get("results", []) if r.get("module") in keep] + results
        errors = [e for e in previous.get("errors", []) if e.get("module") in keep] + errors
        timings = {**{k: v for k, v in previous.get("seconds", {}).items() if k not in ran}, **timings}
    order = {name: index for index, name in enumerate(discover())}
    results.sort(key=lambda r: order.get(r.get("module", ""), len(order)))
    return {
        "generated": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "host": host_facts(),
        "results": results,
        "errors": errors,
        "seconds": timings,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run tlskit's benchmarks against their peers.")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only bench/bench_NAME.py (repeatable); keeps the other rows of results.json")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds allowed per module")
    parser.add_argument("--no-write", action="store_true", help="print the table only; leave results.json and README")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args.child, args.result_file)

    available = discover()
    if args.only:
        names = [module_name(o) for o in args.only]
        unknown = [n for n in names if n not in available]
        if unknown:
            print(f"error: no bench named {', '.join(unknown)}; there are: {', '.join(available)}", file=sys.stderr)
            return 2
    else:
        names = available
    if not names:
        print("error: no bench/bench_*.py modules found", file=sys.stderr)
        return 2

    os.environ[RUN_STARTED_ENV] = _utc_now()  # inherited by every child, see _row()
    outcomes = []
    for name in names:
        print(f"== {name} ...", file=sys.stderr, flush=True)
        outcome = run_module(name, args.timeout)
        state = f"error: {outcome.error}" if outcome.error else f"{len(outcome.rows)} result(s)"
        print(f"== {name}: {state} in {outcome.seconds:.1f} s", file=sys.stderr, flush=True)
        outcomes.append(outcome)

    print()
    print_table(outcomes)
    if not args.no_write:
        previous = None
        if args.only and RESULTS.exists():
            try:
                previous = json.loads(RESULTS.read_text())
            except ValueError:
                previous = None
        document = build_document(outcomes, previous, bool(args.only))
        RESULTS.write_text(json.dumps(document, indent=2) + "\n")
        where = "bench/results.json"
        if update_readme(document):
            where += " and bench/README.md"
        print(f"\nwrote {where}", file=sys.stderr)
    missed = [r["work"] for o in outcomes for r in o.rows if r.get("met") is False]
    if missed:
        print(f"targets missed: {'; '.join(missed)}", file=sys.stderr)
    # A failing bench is a failure of `make bench`; a missed target is a finding, reported above.
    return 1 if any(o.error for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
