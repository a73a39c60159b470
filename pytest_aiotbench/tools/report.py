"""The HTML report from saved results, several runs or devices side by side.

    aiotbench-report RESULTS.json... -o report.html

Each file is one ``--aiot-json`` results file; a phone farm's files (a device each) merge into
one ranking, and a device that several files name (runs of one phone on different days)
appears once per file, named with it. The page is the one ``--aiot-html`` writes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pytest_aiotbench.report import html
from pytest_aiotbench.report.json_file import ResultsDocument, ResultsFileError

PROGRAM = "aiotbench-report"


class ReportError(Exception):
    """Bad input: one line saying what and what to do (exit status 2)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", type=Path, metavar="RESULTS.json",
                        help="results files written by pytest --aiot-json")
    parser.add_argument("-o", "--output", type=Path, default=Path("report.html"),
                        help="the page to write (default: report.html)")
    options = parser.parse_args(argv)
    try:
        sources = [html.Source(str(path), _read(path)) for path in _distinct(options.results)]
        if options.output.is_dir():
            raise ReportError(f"-o {options.output} is a folder; give a file path, for "
                              f"example {options.output / 'report.html'}")
        html.write(options.output, sources)
    except ReportError as exc:
        print(f"{PROGRAM}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{PROGRAM}: error: cannot write {options.output}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return 2
    devices = len(html.device_runs(sources))
    print(f"{PROGRAM}: {devices} device(s) from {len(sources)} file(s) written to "
          f"{options.output}")
    return 0


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
