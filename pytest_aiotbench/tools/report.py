"""The HTML report from saved results, several runs or devices side by side, or over time.

    aiotbench-report RESULTS.json... -o report.html
    aiotbench-report --history DIR -o history.html

Each file is one ``--aiot-json`` results file; a phone farm's files (a device each) merge into
one ranking, and a device that several files name (runs of one phone on different days)
appears once per file, named with it. The page is the one ``--aiot-html`` writes.

``--history DIR`` reads every run in a folder instead (results files, and pytest-benchmark
runs holding aiotbench records) and makes the history page: medians, VIPS and the gate's
verdicts over time (``report/history.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pytest_aiotbench.report import history, html
from pytest_aiotbench.report.json_file import ResultsDocument, ResultsFileError

PROGRAM = "aiotbench-report"


class ReportError(Exception):
    """Bad input: one line saying what and what to do (exit status 2)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="*", type=Path, metavar="RESULTS.json",
                        help="results files written by pytest --aiot-json")
    parser.add_argument("--history", type=Path, metavar="DIR",
                        help="instead of RESULTS.json files: a folder of saved runs "
                             "(--aiot-json files, pytest-benchmark runs of aiotbench items), "
                             "shown over time: medians, VIPS, gate verdicts")
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="the page to write (default: report.html; with --history: "
                             "history.html)")
    options = parser.parse_args(argv)
    # Checked here: argparse's exclusive groups refuse a positional list of files.
    if options.history is not None and options.results:
        parser.error("give either RESULTS.json files or --history DIR (it reads the "
                     "folder's runs itself), not both")
    if options.history is None and not options.results:
        parser.error("give RESULTS.json files (pytest --aiot-json=PATH), or --history DIR")
    output = options.output or Path("history.html" if options.history else "report.html")
    try:
        if options.history is not None:
            summary = _history(options.history, output)
        else:
            sources = [html.Source(str(path), _read(path)) for path in _distinct(options.results)]
            _refuse_folder(output)
            html.write(output, sources)
            summary = (f"{len(html.device_runs(sources))} device(s) from {len(sources)} file(s)"
                       f" written to {output}")
    except ReportError as exc:
        print(f"{PROGRAM}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{PROGRAM}: error: cannot write {output}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2
    print(f"{PROGRAM}: {summary}")
    return 0


def _history(folder: Path, output: Path) -> str:
    """Write the history page of a folder; the summary line to print."""
    if not folder.exists():
        raise ReportError(f"--history {folder}: no such folder; give the folder that holds "
                          "the --aiot-json files (or pytest-benchmark runs) of earlier sessions")
    if not folder.is_dir():
        raise ReportError(f"--history {folder} is a file, not a folder; give the folder that "
                          f"holds the runs (for example {folder.parent}), or make the report "
                          f"of this one run: {PROGRAM} {folder}")
    try:
        made = history.read_history(folder)
    except history.HistoryError as exc:
        raise ReportError(f"--history {exc}") from None
    _refuse_folder(output, "history.html")
    history.write(output, made)
    for skipped in made.skipped:  # listed on the page too
        print(f"{PROGRAM}: skipped {folder / skipped.name}: {skipped.reason}", file=sys.stderr)
    workloads = len(made.series())
    return (f"{workloads} workload(s) over {len(made.runs)} run(s) from {folder} written to "
            f"{output}" + (f" ({len(made.skipped)} file(s) skipped)" if made.skipped else ""))


def _refuse_folder(output: Path, example: str = "report.html") -> None:
    if output.is_dir():
        raise ReportError(f"-o {output} is a folder; give a file path, for example "
                          f"{output / example}")


def _distinct(paths: list[Path]) -> list[Path]:
    seen: set[Path] = set()
    for path in paths:
        if path.resolve() in seen:
            raise ReportError(f"{path} is given twice; name each results file once")
        seen.add(path.resolve())
    return paths


def _read(path: Path) -> ResultsDocument:
    if not path.exists():
        raise ReportError(f"{path}: no such file; give results files written by "
                          "pytest --aiot-json=PATH")
    if path.is_dir():
        raise ReportError(f"{path} is a folder; give the results files in it, e.g. "
                          f"{path}/*.json")
    try:
        return ResultsDocument.from_json(json.loads(path.read_text(encoding="utf-8")))
    except ResultsFileError as exc:
        raise ReportError(f"{path}: {exc}") from None
    except UnicodeDecodeError:
        raise ReportError(f"{path}: not a text file; expected an aiotbench results JSON "
                          "(pytest --aiot-json=PATH)") from None
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}: not JSON ({exc}); expected an aiotbench results file "
                          "(pytest --aiot-json=PATH)") from None
    except OSError as exc:
        raise ReportError(f"{path}: cannot read it ({exc.strerror or exc})") from None


if __name__ == "__main__":
    sys.exit(main())
