"""The replay baseline: decode each line with orjson and encode it again to a file.

Run as its own process (`python -m bench.orjson_roundtrip IN OUT`), like the
replay it is compared with, so both pay process start-up and file I/O. Lines
that are not JSON are skipped: the loop does nothing else on purpose.
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson


def roundtrip(src: Path, dst: Path) -> int:
    """Lines read; every decodable line is re-encoded into dst."""
    loads, dumps = orjson.loads, orjson.dumps
    newline = orjson.OPT_APPEND_NEWLINE
    n = 0
    with src.open("rb") as fin, dst.open("wb") as fout:
        write = fout.write
        for line in fin:
            n += 1
            try:
                value = loads(line)
            except orjson.JSONDecodeError:
                continue
            write(dumps(value, option=newline))
    return n


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m bench.orjson_roundtrip IN OUT", file=sys.stderr)
        return 2
    print(roundtrip(Path(args[0]), Path(args[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
