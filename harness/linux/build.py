"""Build the real Linux virtio_ring.c into a shared library the harness can load.

Rules:
* Nothing of the kernel is committed: the source comes, at build time, from
  the Debian package `linux-source-X` (/usr/src/linux-source-X.tar.xz).  A
  missing package is one LinuxSourceMissing line that says what to install.
  Nothing is installed by this module.
* Only the files the ring needs are extracted (the issue 6 list: virtio_ring.c,
  the tools/virtio shims, tools/include, a few headers); extraction is cached
  per tarball (size and mtime) and member list, compilation per version + a
  hash of our overlays (glue/), the flags and this build script, under
  $VRINGFUZZ_CACHE or ~/.cache/vringfuzz/linux-<ver>/.  A file lock makes concurrent builds
  (pytest -n auto) wait for each other; results land with an atomic rename.
* Our overlay directory comes first on the include path, so its headers
  replace the stock shims (asm/barrier.h, asm/bug.h, linux/bug.h,
  linux/slab.h, linux/ratelimit.h); the glue #includes the kernel files
  themselves.  One library holds both: vf_glue.c (drivers/virtio/
  virtio_ring.c, `--driver linux`) and vf_vringh.c (drivers/vhost/vringh.c,
  `--device linux-vringh`); they share the hook table.
* The kernel's include/ comes last (-idirafter): it only supplies headers
  no shim provides and that are included as <linux/...> (6.12's
  compiler_types.h needs linux/compiler-context-analysis.h).
* Kernel versions differ in the glue only through `#if VF_KVER >= 612`
  (6.12's __vring_new_virtqueue takes a dma_dev).
* `tsan=True` compiles with -fsanitize=thread against our own __tsan_*
  hooks (glue/vf_tsan.c) instead of the TSan runtime: every load and store of
  the ring code becomes a call the harness can see.
* A modified ring (a planted fault, a fix under review) is built from the
  same extraction plus `patch=FILE.diff` (applied with `patch -p1` inside a
  copy of the source tree) or `source=DIR` (files under DIR replace the same
  relative paths, e.g. DIR/drivers/virtio/virtio_ring.c).  Its library is a
  cache entry of its own, keyed by the patch or overlay contents, named
  libvfring-[tsan-]custom-<tag>-<key>.so; load it with
  `--driver harness.linux.lib:/path/to/that.so` (harness/linux/lib.py).
"""
from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .errors import LinuxBuildError, LinuxSourceMissing

SUPPORTED_VERSIONS = ("6.1", "6.12")
GLUE = Path(__file__).resolve().parent / "glue"

#: Members of the tarball the build needs (relative to linux-source-X/).
_COMMON = [
    "drivers/virtio/virtio_ring.c",
    "tools/virtio/linux", "tools/virtio/asm", "tools/virtio/uapi",
    "tools/virtio/xen", "tools/virtio/generated",
    "tools/include",
    "include/linux/kconfig.h", "include/linux/byteorder/generic.h",
    "include/linux/kern_levels.h", "include/linux/irqreturn.h",
    "include/linux/virtio_ring.h", "include/linux/virtio_byteorder.h",
    "include/uapi/linux/virtio_config.h", "include/uapi/linux/virtio_ring.h",
    "include/uapi/linux/virtio_types.h",
    # vringh.c, the host side (vf_vringh.c)
    "drivers/vhost/vringh.c", "include/linux/vringh.h", "include/linux/uio.h",
]
_EXTRA = {"6.12": ["include/linux/compiler_types.h", "include/linux/container_of.h",
                   "include/linux/compiler-context-analysis.h"]}
#: The glue translation units, in link order.
_UNITS = ("vf_glue.c", "vf_vringh.c")

# As tools/virtio/Makefile, minus -Werror (gcc versions differ in warnings).
_CFLAGS = ["-O2", "-g", "-shared", "-fPIC", "-Wall", "-Wno-maybe-uninitialized",
           "-Wno-pointer-sign", "-Wno-unused-function", "-fno-strict-overflow",
           "-fno-strict-aliasing", "-fno-common", "-U_FORTIFY_SOURCE", "-pthread"]
_TSAN_FLAGS = ["-fsanitize=thread"]


def tarball(version: str) -> Path:
    return Path(f"/usr/src/linux-source-{version}.tar.xz")


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("VRINGFUZZ_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "vringfuzz"


def check_source(version: str) -> Path:
    """The package tarball, or LinuxSourceMissing saying what to install."""
    if version not in SUPPORTED_VERSIONS:
        raise LinuxBuildError(f"unsupported kernel version {version!r} "
                              f"(supported: {', '.join(SUPPORTED_VERSIONS)})")
    tar = tarball(version)
    if not tar.is_file():
        raise LinuxSourceMissing(
            f"{tar} not found: run `apt-get install linux-source-{version}` "
            f"(Debian package) and retry")
    return tar


def _overlay_files() -> list[Path]:
    return sorted(p for p in GLUE.rglob("*") if p.is_file() and p.suffix in (".c", ".h"))


def _key(version: str, flags: list[str], tar: Path, tag: str = "") -> str:
    h = hashlib.sha256(tag.encode() + b"\0")
    st = tar.stat()
    h.update(f"{version}\0{st.st_size}\0{st.st_mtime_ns}\0{' '.join(flags)}\0".encode())
    # This file too: member lists and command lines live here.
    h.update(Path(__file__).read_bytes() + b"\0")
    for p in _overlay_files():
        h.update(str(p.relative_to(GLUE)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _members(version: str) -> list[str]:
    return _COMMON + _EXTRA.get(version, [])


def _extract(version: str, tar: Path, root: Path) -> Path:
    """Extract the needed members once per tarball and member list; returns
    the source dir (a new member list, e.g. vringh.c added, re-extracts)."""
    st = tar.stat()
    names = hashlib.sha256("\0".join(_members(version)).encode()).hexdigest()[:8]
    src = root / f"src-{st.st_size:x}-{st.st_mtime_ns:x}-{names}"
    if (src / ".complete").exists():
        return src
    prefix = f"linux-source-{version}/"
    members = [prefix + m for m in _members(version)]
    tmp = Path(tempfile.mkdtemp(prefix="extract-", dir=root))
    try:
        proc = subprocess.run(["tar", "-xJf", str(tar), "-C", str(tmp),
                               "--strip-components=1", *members],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise LinuxBuildError(f"extracting {tar} failed: {proc.stderr.strip()[:500]}")
        (tmp / ".complete").write_text("ok\n")
        if src.exists():
            shutil.rmtree(src)
        tmp.rename(src)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return src


def compile_commands(version: str, src: Path, out: Path, tsan: bool = False) -> list[list[str]]:
    """gcc command lines, in order: each glue unit to an object, then one
    link.  A tsan build compiles the units with -fsanitize=thread and links
    them with vf_tsan.c (our hooks, uninstrumented) without -fsanitize, so no
    TSan runtime is linked."""
    kver = {"6.1": 601, "6.12": 612}[version]
    incs = [f"-DVF_KVER={kver}", "-I", str(GLUE / "include"), "-I", str(src / "tools/virtio"),
            "-I", str(src / "tools/include"), "-I", str(src),
            "-idirafter", str(src / "include"),
            "-include", str(src / "include/linux/kconfig.h")]
    cflags = [f for f in _CFLAGS if f != "-shared"] + (_TSAN_FLAGS if tsan else [])
    cmds, objs = [], []
    for unit in _UNITS:
        obj = out.with_suffix(f".{Path(unit).stem}.o")
        cmds.append(["gcc", *cflags, *incs, "-c", str(GLUE / unit), "-o", str(obj)])
        objs.append(obj)
    if tsan:
        hooks = out.with_suffix(".tsan.o")
        cmds.append(["gcc", *[f for f in _CFLAGS if f != "-shared"], "-I", str(GLUE / "include"),
                     "-c", str(GLUE / "vf_tsan.c"), "-o", str(hooks)])
        objs.append(hooks)
    cmds.append(["gcc", "-shared", "-pthread", *map(str, objs), "-o", str(out)])
    return cmds


def _objects(out: Path) -> list[Path]:
    return [out.with_suffix(f".{Path(u).stem}.o") for u in _UNITS] + [out.with_suffix(".tsan.o")]


def _overlay_tag(patch, source) -> str:
    """A short hash naming a modified ring ("" for the stock one)."""
    if patch is None and source is None:
        return ""
    if patch is not None and source is not None:
        raise LinuxBuildError("give --patch or --source, not both")
    h = hashlib.sha256()
    if patch is not None:
        p = Path(patch)
        if not p.is_file():
            raise LinuxBuildError(f"--patch {p}: no such file")
        h.update(b"patch\0" + p.read_bytes())
    else:
        d = Path(source)
        if not d.is_dir():
            raise LinuxBuildError(f"--source {d}: not a directory")
        for f in sorted(x for x in d.rglob("*") if x.is_file()):
            h.update(str(f.relative_to(d)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def _modified(src: Path, root: Path, tag: str, patch, source) -> Path:
    """A copy of the extracted tree with the patch applied / the overlay copied in."""
    dst = root / f"custom-{tag}"
    if (dst / ".complete").exists():
        return dst
    tmp = Path(tempfile.mkdtemp(prefix="custom-", dir=root))
    try:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        (tmp / ".complete").unlink(missing_ok=True)
        if patch is not None:
            proc = subprocess.run(["patch", "-p1", "--batch", "--forward", "-d", str(tmp),
                                   "-i", str(Path(patch).resolve())],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise LinuxBuildError(f"--patch {patch} does not apply to the Linux source: "
                                      f"{(proc.stdout + proc.stderr).strip()[-800:]}")
        else:
            d = Path(source)
            for f in sorted(x for x in d.rglob("*") if x.is_file()):
                target = tmp / f.relative_to(d)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, target)
        (tmp / ".complete").write_text("ok\n")
        if dst.exists():
            shutil.rmtree(dst)
        tmp.rename(dst)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dst


def source_dir(version: str = "6.1", cache_dir: str | os.PathLike | None = None) -> Path:
    """The pristine extracted tree (to write a patch against)."""
    tar = check_source(version)
    root = cache_root(cache_dir) / f"linux-{version}"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _extract(version, tar, root)


def build(version: str = "6.1", cache_dir: str | os.PathLike | None = None,
          tsan: bool = False, patch: str | os.PathLike | None = None,
          source: str | os.PathLike | None = None) -> Path:
    """Path of the built (or cached) ring library (virtio_ring.c + vringh.c)
    for this kernel version, stock or modified by `patch` / `source`."""
    tar = check_source(version)
    tag = _overlay_tag(patch, source)
    root = cache_root(cache_dir) / f"linux-{version}"
    root.mkdir(parents=True, exist_ok=True)
    flags = _CFLAGS + (_TSAN_FLAGS if tsan else [])
    name = ("tsan-" if tsan else "") + (f"custom-{tag}-" if tag else "")
    lib = root / f"libvfring-{name}{_key(version, flags, tar, tag)}.so"
    if lib.exists():
        return lib
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if lib.exists():                      # another process built it meanwhile
            return lib
        src = _extract(version, tar, root)
        if tag:
            src = _modified(src, root, tag, patch, source)
        tmp = lib.with_suffix(f".tmp{os.getpid()}")
        try:
            for cmd in compile_commands(version, src, tmp, tsan):
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    tmp.unlink(missing_ok=True)
                    raise LinuxBuildError(
                        f"gcc failed building the Linux {version} ring library "
                        f"({Path(cmd[cmd.index('-o') - 1]).name}):\n"
                        f"{proc.stderr.strip()[-3000:]}")
        finally:
            for leftover in _objects(tmp):
                leftover.unlink(missing_ok=True)
        os.replace(tmp, lib)
    return lib


def main_build(argv: list[str] | None = None) -> int:
    """`vringfuzz linux build [--version 6.1|6.12] [--tsan] [--cache-dir DIR]
    [--patch FILE.diff | --source DIR] [--print-source]`.

    Exit status: 0 built (prints the library path), 2 missing package or
    failed build (one line on stderr says why), as for usage errors.
    """
    from harness.cli import _Parser  # one-line usage errors, exit 2
    ap = _Parser(prog="vringfuzz linux build",
                                 description="Build the Linux virtio_ring.c + vringh.c library "
                                             "from the installed linux-source package.")
    ap.add_argument("--version", default="6.1", choices=SUPPORTED_VERSIONS)
    ap.add_argument("--tsan", action="store_true",
                    help="instrument every load/store (-fsanitize=thread, our own hooks)")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--patch", default=None, metavar="FILE.diff",
                    help="build a modified ring: apply this -p1 diff to the extracted source")
    ap.add_argument("--source", default=None, metavar="DIR",
                    help="build a modified ring: files under DIR replace the same paths")
    ap.add_argument("--print-source", action="store_true",
                    help="print the pristine extracted source folder (to diff against)")
    args = ap.parse_args(argv)
    try:
        if args.print_source:
            print(source_dir(args.version, args.cache_dir))
            return 0
        path = build(args.version, args.cache_dir, tsan=args.tsan, patch=args.patch,
                     source=args.source)
    except LinuxSourceMissing as e:
        print(f"vringfuzz: {e}", file=sys.stderr)
        return 2
    except LinuxBuildError as e:
        print(f"vringfuzz: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main_build())
