"""The vringfuzz command line.

Exit status everywhere: 0 nothing found, 1 a failure found (or a replay still
fails), 2 usage (bad option, bad repro file, unknown --driver/--bug/...); a
usage error is one line on stderr and nothing written.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading

from harness.errors import UsageError
from vring.contract import PluginError

ENGINES = ("stateful", "random", "pct", "explore", "fuzz")
MEMORY_MODELS = ("sc", "tso", "relaxed")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse prints usage + 2 lines)
        raise UsageError(f"{self.prog}: {message}")


def _positive(kind):
    def conv(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if v < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0: {text!r}")
        return v
    return conv


#: --driver/--device: a side under test (DESIGN.md, the plug-in contract;
#: the shipped names: harness/plugins.py).
_DRIVER_HELP = ("reference (default), linux, linux-tsan, linux:LIB.so, or a plug-in "
                "as module:factory")
_DEVICE_HELP = ("reference (default), linux-vringh, linux-vringh-tsan, or a plug-in "
                "as module:factory")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="vringfuzz", description="Find ordering, notification and locking "
                "bugs in virtio virtqueues.")
    sub = p.add_subparsers(dest="cmd", parser_class=_Parser, metavar="COMMAND")

    c = sub.add_parser("campaign", help="the default job: every engine against the ring, "
                       "progress on screen, a report at the end")
    c.add_argument("--time", type=_positive(float), default=None,
                   help="total budget in seconds (default: a few minutes)")
    c.add_argument("--seed", type=_positive(int), default=0,
                   help="the engines' seed (default 0)")
    c.add_argument("--out", default="campaign-out", help="report and repro folder")
    c.add_argument("--driver", default="reference", help=_DRIVER_HELP)
    c.add_argument("--device", default="reference", help=_DEVICE_HELP)
    c.add_argument("--bug", default=None, help="plant a bug from the zoo (see `vringfuzz bugs`)")
    c.add_argument("--json", action="store_true", help="print one JSON object")

    k = sub.add_parser("check", help="run one engine")
    k.add_argument("--engine", choices=ENGINES, default="stateful")
    k.add_argument("--scenario", default=None, help="net, blk, drafts, ... (scheduled engines)")
    k.add_argument("--target", default=None, help="fuzz target (engine fuzz)")
    k.add_argument("--bug", default=None, help="plant a bug from the zoo (see `vringfuzz bugs`)")
    k.add_argument("--driver", default="reference", help=_DRIVER_HELP)
    k.add_argument("--device", default="reference", help=_DEVICE_HELP)
    k.add_argument("--memory-model", choices=MEMORY_MODELS, default=None,
                   help="default sc, or the weakest model a planted --bug needs")
    k.add_argument("--time", type=_positive(float), default=10.0,
                   help="budget in seconds (default 10)")
    k.add_argument("--seed", type=_positive(int), default=None,
                   help="the engine's seed (default: a random one, reported)")
    k.add_argument("--out", default=None, help="folder for repro files (default: ./out)")
    k.add_argument("--size", type=_positive(int), default=None, help="queue size")
    k.add_argument("--features", default=None, help="e.g. indirect,event_idx,in_order")
    k.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a scenario parameter (random/pct/explore), e.g. buffers=3 slots=4")
    k.add_argument("--depth", type=_positive(int), default=3, help="PCT bug depth")
    k.add_argument("--preemption-bound", type=_positive(int), default=2, help="explore bound")
    k.add_argument("--jobs", type=_positive(int), default=1,
                   help="explore: worker processes sharing the search (one core each)")
    k.add_argument("--reduction", choices=("states", "dpor", "none"), default=None,
                   help="explore: cut runs at states already explored (default), "
                        "partial-order reduction, or none")
    k.add_argument("--json", action="store_true", help="print one JSON object")

    f = sub.add_parser("fuzz", help="an atheris campaign on one target")
    f.add_argument("target", help="desc_chain, used_ring or schedule")
    f.add_argument("--time", type=_positive(float), default=60.0,
                   help="budget in seconds (default 60)")
    f.add_argument("--jobs", type=_positive(int), default=1,
                   help="libFuzzer workers, one core each (default 1)")
    f.add_argument("--corpus", default=None,
                   help="working corpus, resumed from after a kill (default: "
                        "OUT/corpus/TARGET); the committed seeds are read too")
    f.add_argument("--out", default=None,
                   help="crash artifacts, repro files and the log (default: ./out)")
    f.add_argument("--driver", default="reference", help=_DRIVER_HELP)
    f.add_argument("--device", default="reference", help=_DEVICE_HELP)
    f.add_argument("--bug", default=None, help="plant a bug from the zoo (see `vringfuzz bugs`)")
    f.add_argument("--memory-model", choices=MEMORY_MODELS, default=None,
                   help="schedule target: pin the model (default: its bytes choose)")
    f.add_argument("--json", action="store_true", help="print one JSON object")

    r = sub.add_parser("replay", help="re-run a repro file (exit 1 when it still fails)")
    r.add_argument("file", help="a repro file (JSON)")
    r.add_argument("--svg", default=None, help="also draw the run as an SVG swimlane")
    r.add_argument("--quiet", action="store_true", help="no timeline")

    m = sub.add_parser("minimize", help="shrink a repro, keeping its failure signature")
    m.add_argument("file", help="a repro file (JSON)")
    m.add_argument("-o", "--output", required=True, help="where to write the smaller repro")

    sub.add_parser("bugs", help="list the bug zoo")

    b = sub.add_parser("bench", help="benchmarks (ring, sched, explore, threads, fuzz, bugs)")
    b.add_argument("what", nargs="?", default="ring",
                   help="ring, sched, explore, threads, fuzz, bugs or all (ring, sched, "
                        "explore, fuzz); default ring")
    b.add_argument("--seconds", type=_positive(float), default=None,
                   help="ring: seconds per configuration; sched: seconds in all; fuzz: "
                        "seconds per libFuzzer run; explore: the cap on each bound-2 search")
    b.add_argument("--seeds", type=_positive(int), default=3,
                   help="threads, bugs: seeds per bug and engine")
    b.add_argument("--budget", type=_positive(float), default=60.0,
                   help="threads, bugs: seconds per run (one bug, engine and seed)")
    b.add_argument("--jobs", type=_positive(int), default=1,
                   help="bugs: worker processes (one core each)")
    b.add_argument("--fp-seconds", type=_positive(float), default=None,
                   help="bugs: false-positive budget per engine and memory model")
    b.add_argument("--bug", action="append", default=[],
                   help="bugs: only this bug (repeatable)")
    b.add_argument("--engine", action="append", default=[],
                   help="bugs: only this engine or baseline (repeatable)")
    b.add_argument("--fp-only", action="store_true",
                   help="bugs: only the false-positive check")
    b.add_argument("--merge", metavar="WHY", default=None,
                   help="bugs: put this partial run into docs/detection.{md,json}, "
                        "recording WHY it was re-run")
    b.add_argument("--json", action="store_true", help="print the results as JSON")

    lx = sub.add_parser("linux", help="build the Linux virtio_ring.c target")
    lx.add_argument("action", choices=["build"])
    lx.add_argument("rest", nargs=argparse.REMAINDER,
                    help="[--version 6.1|6.12] [--tsan] [--cache-dir DIR]")
    return p


def _emit(result, as_json: bool) -> int:
    if as_json:
        print(json.dumps(result.to_json(), sort_keys=True))
    elif result.found:
        print(f"FOUND [{result.oracle}] {result.message}")
        if result.repro:
            print(f"repro: {result.repro}\nreplay with: vringfuzz replay {result.repro}")
        print(f"{result.engine}: {result.runs} runs in {result.seconds:.1f}s")
    else:
        note = f" ({result.message})" if result.message else ""
        print(f"{result.engine}: nothing found in {result.runs} runs, "
              f"{result.seconds:.1f}s{note}")
    return 1 if result.found else 0


def _check_plugins(args) -> None:
    from harness.plugins import check
    args.driver = check(args.driver, "driver")
    args.device = check(args.device, "device")


def _check_bug(name) -> None:
    if name is None:
        return
    try:
        from harness import bugs
    except ImportError:
        raise UsageError("--bug: the bug zoo is not available in this build") from None
    bugs.get(name)  # UsageError naming the known bugs when unknown


def cmd_check(args) -> int:
    _check_plugins(args)
    _check_bug(args.bug)
    from harness import check
    return _emit(check.run_check(args), args.json)


def cmd_campaign(args) -> int:
    _check_plugins(args)
    _check_bug(args.bug)
    from harness import campaign
    return campaign.main(args)


def cmd_replay(args) -> int:
    from harness import replay
    return replay.main(args)


def cmd_minimize(args) -> int:
    from harness import replay
    return replay.minimize_main(args)


def cmd_bugs(args) -> int:
    from harness import bugs
    print(bugs.describe_all())
    return 0


def cmd_fuzz(args) -> int:
    from harness import fuzzing
    return fuzzing.main(args)


def cmd_bench(args) -> int:
    from harness import bench
    return bench.main(args)


def cmd_linux(args) -> int:
    from harness.linux import build
    return build.main_build(args.rest)


COMMANDS = {"check": cmd_check, "campaign": cmd_campaign, "replay": cmd_replay,
            "minimize": cmd_minimize, "bugs": cmd_bugs, "fuzz": cmd_fuzz,
            "bench": cmd_bench, "linux": cmd_linux}


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so cleanup (`finally`) runs; a
    BaseException, like KeyboardInterrupt, so no `except Exception` (a pool
    worker's included) swallows it."""


def _terminated(signum, frame):
    raise Terminated()


def main(argv=None) -> int:
    from harness.repro import ReproError
    parser = build_parser()
    # `kill PID` must stop a campaign's children too, as Ctrl-C does: the
    # default SIGTERM action would skip every `finally` that stops them.
    old_term = None
    if threading.current_thread() is threading.main_thread():
        old_term = signal.signal(signal.SIGTERM, _terminated)
    try:
        args = parser.parse_args(argv)
        if args.cmd is None:
            args = parser.parse_args(["campaign"] + list(argv or []))
        return COMMANDS[args.cmd](args)
    except (UsageError, PluginError, ReproError) as e:
        print(f"vringfuzz: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vringfuzz: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("vringfuzz: terminated", file=sys.stderr)
        return 143
    except BrokenPipeError:
        # `vringfuzz bugs | head`: the reader left; point stdout at devnull so
        # the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)


if __name__ == "__main__":
    sys.exit(main())
