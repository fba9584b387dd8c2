"""python -m server (or csv-import) serve | import | generate | bench | user | token | login-link | migrate"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from . import __version__
from .config import Config, ConfigError
from .logs import AccessLogger, banner_printer, configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=_prog(), description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the web app and the API")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)

    imp = commands.add_parser("import", help="import a CSV file with a terminal progress bar")
    imp.add_argument("file", type=Path)
    imp.add_argument("--no-progress", action="store_true", help="no progress bar")
    imp.add_argument("--json", action="store_true", help="print the final job as JSON on stdout")
    imp.add_argument("--stats", action="store_true",
                     help="print engine figures (event-loop lag, peak memory) as JSON on stderr")
    imp.add_argument("--encoding", default="auto", choices=("auto", "utf-8", "utf-16", "windows-1252", "latin-1"))
    imp.add_argument("--delimiter", default="auto", help="auto, ',', ';', tab (or '\\t') or '|'")
    imp.add_argument("--date-format", default="auto",
                     help="auto, YYYY-MM-DD, DD-MM-YYYY, MM-DD-YYYY, DD/MM/YYYY, MM/DD/YYYY, DD.MM.YYYY, YYYY/MM/DD")
    imp.add_argument("--map", action="append", default=[], metavar="COLUMN=FIELD",
                     help="send a file column to a customer field (repeatable); COLUMN= ignores the column")
    imp.add_argument("--dry-run", action="store_true",
                     help="read the whole file, count and fill the rejects, change no customer")

    gen = commands.add_parser("generate", help="write a Datablist-shaped customers CSV")
    gen.add_argument("--rows", type=int, required=True)
    gen.add_argument("--out", type=Path, required=True)
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("--about-bytes", type=int, default=1000)

    bench = commands.add_parser("bench", help="side-by-side benchmark against psql \\copy")
    bench.add_argument("rows", type=int, nargs="?", help="default 2,000,000 (200,000 with --edge)")
    bench.add_argument("--about-bytes", type=int, default=1000)
    bench.add_argument("--ten-gb", action="store_true",
                       help="about 10 GB (10,000,000 rows unless ROWS): one import, its RSS at 10/50/90%%, search")
    bench.add_argument("--uploads", type=int, metavar="MB",
                       help="only compare upload throughput (tus vs multipart) on a file of about MB megabytes")
    bench.add_argument("--edge", action="store_true",
                       help="only the HTTP edge: loop lag during 40,000-part uploads and four exports")
    bench.add_argument("--engine", action="store_true",
                       help="the import engine's figures: stray quotes, tiny bad rows, search backfill")
    bench.add_argument("--backfill-rows", type=int, default=10_000_000,
                       help="customers for the search-table backfill figure of --engine (0: skip it)")
    bench.add_argument("--imports-only", action="store_true",
                       help="only the imports side by side: the \\copy baselines, 1 and N workers, pinned to cores")
    bench.add_argument("--api-only", action="store_true",
                       help="only the customers API's pages and search, on the bench database as it is "
                            "(our import loads the file first only if it holds no customer)")

    doc = commands.add_parser("config-doc", help="print the settings' tables of docs/configuration.md")
    doc.add_argument("--write", type=Path, metavar="FILE",
                     help="replace the tables in FILE (between its config-doc markers) instead")

    from .auth.command import add_commands

    add_commands(commands)

    args = parser.parse_args(argv)
    if args.command == "config-doc":  # describes the settings, reads none
        from .configdoc import run_config_doc

        return run_config_doc(args.write)
    try:
        config = Config.from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.log_format, config.log_level)

    if args.command == "serve":
        from aiohttp import web

        from .app import create_app
        from .auth.command import sign_in_announcer
        from .capacity import raise_open_files_limit

        before, after = raise_open_files_limit()  # a connection is an open file
        logging.getLogger("server").info("open files limit: %s (was %s)", after, before)
        # The Host allowlist and the printed sign-in link follow the address really served.
        served = dataclasses.replace(config, host=args.host or config.host, port=args.port or config.port)
        changed = {name: str(getattr(served, name.lower())) for name in ("HOST", "PORT")
                   if getattr(served, name.lower()) != getattr(config, name.lower())}
        config = served
        app = create_app(config)
        app.on_startup.append(sign_in_announcer(changed))
        # aiohttp's keep-alive timeout is also the only bound on a request head that never ends.
        web.run_app(app, host=config.host, port=config.port, access_log_class=AccessLogger,
                    keepalive_timeout=config.request_header_timeout_seconds,
                    print=banner_printer(config.log_format))
        return 0
    if args.command in ("user", "token", "login-link", "migrate"):
        from .auth.command import run_access_command

        return run_access_command(config, args)
    if args.command == "import":
        from .importer.command import run_import_command

        return run_import_command(config, args.file, progress=not args.no_progress,
                                  as_json=args.json, stats=args.stats, options=_import_options(args))
    if args.command == "generate":
        from .generate import generate

        return _generate(generate, args)
    if args.command == "bench" and args.uploads:
        from .bench.uploads import run_upload_bench

        return run_upload_bench(config, args.uploads)
    if args.command == "bench":
        if args.edge:
            from .bench.edge import run_edge_bench

            return run_edge_bench(config, args.rows or 200_000)
        if args.engine:
            from .bench.engine import run_engine_bench

            return run_engine_bench(config, backfill_rows=args.backfill_rows)
        from .bench import run_api_bench, run_bench
        from .bench.runner import run_import_bench

        if args.imports_only:
            return run_import_bench(config, args.rows or 2_000_000, about_bytes=args.about_bytes)
        if args.api_only:
            return run_api_bench(config, args.rows or 2_000_000, about_bytes=args.about_bytes)
        if args.ten_gb:
            return run_bench(config, args.rows or 10_000_000, about_bytes=args.about_bytes, big=True)
        status = run_bench(config, args.rows or 2_000_000, about_bytes=args.about_bytes)
        from .bench.uploads import WHOLE_BENCH_MEGABYTES, run_upload_bench

        # The whole benchmark also compares the two ways in (tus and multipart) on one file.
        return status or run_upload_bench(config, WHOLE_BENCH_MEGABYTES)
    parser.error(f"unknown command {args.command}")
    return 2


def _import_options(args) -> dict | str:
    """The import options of the command line, or what is wrong with them."""
    from .fields import IMPORTED_NAMES
    from .importer.dates import LAYOUTS
    from .importer.header import DELIMITERS

    delimiter = {"tab": "\t", "\\t": "\t"}.get(args.delimiter, args.delimiter)
    if delimiter != "auto" and delimiter not in DELIMITERS:
        return f"--delimiter {args.delimiter!r} is not one of auto , ; tab |"
    if args.date_format != "auto" and args.date_format not in LAYOUTS:
        return f"--date-format {args.date_format!r} is not one of auto, {', '.join(LAYOUTS)}"
    mapping = {}
    for item in args.map:
        column, sep, field = item.partition("=")
        if not sep or not column.strip():
            return f"--map {item!r}: write COLUMN=FIELD, or COLUMN= to ignore the column"
        if field and field not in IMPORTED_NAMES:
            return f"--map {item!r}: {field!r} is not one of {', '.join(IMPORTED_NAMES)}"
        mapping[column] = field or None
    return {"encoding": args.encoding, "delimiter": delimiter, "date_format": args.date_format,
            "mapping": mapping, "dry_run": args.dry_run}


def _prog() -> str:
    """The name the user typed: `csv-import` (the console command) or `python -m server`."""
    name = Path(sys.argv[0]).name
    return "python -m server" if name in ("__main__.py", "-m", "") else name


def _generate(generate, args) -> int:
    from tqdm import tqdm

    if args.rows < 0 or args.about_bytes < 0:
        print("--rows and --about-bytes must not be negative", file=sys.stderr)
        return 2
    with tqdm(total=args.rows, unit="row", unit_scale=True, disable=None) as bar:
        written = generate(args.out, args.rows, seed=args.seed, about_bytes=args.about_bytes,
                           progress=lambda done: bar.update(done - bar.n))
    print(f"wrote {args.rows} rows, {written} bytes to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
