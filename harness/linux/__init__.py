"""The real Linux virtio_ring.c as a vringfuzz target (issue 6).

    build.build(version="6.1", cache_dir=None, tsan=False) -> Path   the .so
    build.main_build(argv) -> int          `vringfuzz linux build [--version]`
    driver.make(mem, cfg, platform)        `--driver harness.linux.driver:make`
    driver.linux_memory(size) -> GuestMemory over memory C can address
    isolate.run_isolated(fn, *args)        run C in a worker: a crash is a finding

Needs the Debian package `linux-source-6.1` (or 6.12); nothing of the kernel
is committed.  Importing this package does not build anything.
"""
