#!/bin/bash -eu
# ClusterFuzzLite / OSS-Fuzz build for vringfuzz (FACTS.md: Python layout).
# Installs the project, compiles every atheris target in fuzz/ (one file each,
# each with TestOneInput), and ships the committed seeds as
# <target>_seed_corpus.zip.  Seeds are generated: run corpora/make_seeds.py
# after changing an input format, never edit them by hand.
cd "$SRC/vringfuzz"
pip3 install .
for target in desc_chain used_ring schedule; do
  compile_python_fuzzer "fuzz/$target.py"
  if [ -d "corpora/$target" ]; then
    (cd "corpora/$target" && zip -q -r "$OUT/${target}_seed_corpus.zip" .)
  fi
done
