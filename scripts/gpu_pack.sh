#!/usr/bin/env bash
# Packs what scripts/gpu_check.sh needs on a GPU machine into one folder (default: .gpu/ of the
# repository; pass another as $1): the built `sluice`, `inference_gpu_tests` and
# `inference_tests`, the shared libraries they load except those the GPU machine brings itself
# (C and C++ runtimes, the CUDA driver, runtime, cuBLAS and NCCL), the golden DBRX checkpoints,
# SciFact, the check script, the Hugging Face anchor of the decode benchmark
# (tools/bench/hf_dbrx_eager.py), the embeddings server over a sentence encoder found on the
# machine (tools/bench/st_embedding_server.py), the Nsight Compute summariser
# (tools/bench/ncu_kernels.py) and the scripts that make the repository's goldens
# (tests/golden/dbrx/*.py).
# Build first: cmake --build build --target sluice inference_gpu_tests inference_tests
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${SLUICE_BUILD_DIR:-$ROOT/build}"
SHARED="${SLUICE_SHARED_DIR:-$ROOT/../shared}"
DEST="${1:-$ROOT/.gpu}"

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib" "$stage/shared/golden"
cp "$BUILD/bin/sluice" "$BUILD/bin/inference_gpu_tests" "$BUILD/bin/inference_tests" "$stage/bin/"
# The test binary keeps its symbols for readable crash reports.
strip --strip-unneeded "$stage/bin/sluice"
for binary in "$stage"/bin/*; do
  ldd "$binary" | awk '/=> \// { print $3 }'
done | sort -u |
  grep -vE '/(libc|libm|libstdc\+\+|libgcc_s|ld-linux[^/]*|libpthread|libdl|librt|libcuda|libcudart|libcublas[^/]*|libnccl)\.so' |
  xargs -r cp -L -t "$stage/lib"
cp -r "$SHARED/golden/dbrx" "$stage/shared/golden/"
# SciFact for the retrieval benchmark with a sentence encoder (the check's encoder step).
mkdir -p "$stage/shared/data"
cp -r "$SHARED/data/scifact" "$stage/shared/data/"
# ../shared is read-only; the copies must not be, or the stage (and the unpacked pack) cannot be
# removed by a user other than root.
chmod -R u+w "$stage/shared"
# `sluice model init-tiny` looks for the tokenizer ranks beside the binary, in ../share/sluice.
mkdir -p "$stage/share/sluice"
cp "$ROOT/inference/assets/cl100k_base.tiktoken" "$stage/share/sluice/"

mkdir -p "$DEST"
rm -rf "${DEST:?}"/*
tar -C "$stage" -cf - bin lib shared share | xz -T2 -6 >"$DEST/pack.tar.xz"
cp "$ROOT/scripts/gpu_check.sh" "$DEST/check.sh"
cp "$ROOT/tools/bench/hf_dbrx_eager.py" "$ROOT/tools/bench/st_embedding_server.py" \
  "$ROOT/tools/bench/ncu_kernels.py" "$ROOT"/tests/golden/dbrx/*.py "$DEST/"
du -sh "$DEST"/*
