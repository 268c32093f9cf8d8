"""The vringfuzz command line (exit status: 0 nothing found, 1 found, 2 usage)."""
import sys


def main(argv=None) -> int:
    print("vringfuzz: not wired yet", file=sys.stderr)
    return 2
