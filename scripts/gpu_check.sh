#!/usr/bin/env bash
# The CUDA backend's checks on a GPU machine, from a pack made by scripts/gpu_pack.sh (run it as
# `bash <pack folder>/check.sh`). Logs go to $OUT (default: <pack folder>/out): summary.txt holds
# every step's verdict and the measured numbers; gpu_tests.log, serve_tiny.log and
# serve_small.log the full outputs. Exits non-zero when any step failed.
#
# Steps: the gpu parity tests; `sluice generate --backend cuda` on the tiny preset (against
# --backend cpu) and on a golden checkpoint (against the reference's greedy ids); `sluice serve
# --backend cuda` answering POST /v1/chat/completions for the tiny and the small preset; the
# decode benchmark at DBRX's layer sizes: Hugging Face eager DbrxForCausalLM and `sluice bench
# decode --backend cuda` on 4 layers (bf16, fp8, int4 experts) in the same run, then 40 layers of
# fp8 and of int4 where the GPU's memory holds them (bench_decode_4.txt, bench_decode_40.txt,
# bench_decode_40_int4.txt; the anchor's figures in summary.txt); then `sluice bench serve
# --backend cuda` on the small preset with 16 clients, and on the tiny preset with output overlap
# on and off (all in bench_serve_cuda.txt).
# A lent GPU machine hands back at most eight files from $OUT: the full run writes eight
# (summary.txt, gpu_tests.log, serve_tiny.log, serve_small.log and the four benchmark files).
# SLUICE_GPU_CHECK=tests stops after the tests; =bench runs the tests and the benchmarks only
# (six files);
# =golden only makes the repository's goldens with the reference (transformers on this machine's
# CPU, tests/golden/dbrx/make_dbrx_golden.py) and checks the CPU backend against them at once:
# golden.log and dbrx_goldens.tar.gz (unpack into tests/golden/dbrx).
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${OUT:-$HERE/out}"
WORK=/tmp/sluice-gpu-check
mkdir -p "$OUT"
rm -rf "$WORK" && mkdir -p "$WORK"
tar -C "$WORK" -xJf "$HERE/pack.tar.xz"
export LD_LIBRARY_PATH="$WORK/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
export SLUICE_SHARED_DIR="$WORK/shared"
# NCCL is not part of the CUDA toolkit: where the machine has no libnccl beside CUDA's libraries,
# use the one its Python environment ships (the nvidia-nccl wheel).
if ! ldconfig -p | grep -q libnccl.so.2 && [ ! -e /usr/local/cuda/lib64/libnccl.so.2 ]; then
  nccl_dir=$(python3 -c 'import glob, os, site
for base in site.getsitepackages():
    for found in glob.glob(os.path.join(base, "nvidia", "nccl*", "lib", "libnccl.so.2")):
        print(os.path.dirname(found)); break' 2>/dev/null | head -1)
  [ -n "$nccl_dir" ] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$nccl_dir"
fi
SLUICE="$WORK/bin/sluice"
SUMMARY="$OUT/summary.txt"
# A test binary beside this script replaces the packed one (rerunning the tests after a fix
# without repacking); SLUICE_GPU_CHECK=tests stops after them.
if [ -f "$HERE/inference_gpu_tests" ]; then
  cp "$HERE/inference_gpu_tests" "$WORK/bin/inference_gpu_tests"
fi
failed=0

say() { echo "$*" | tee -a "$SUMMARY"; }
verdict() {  # name, exit code
  if [ "$2" -eq 0 ]; then say "ok     $1"; else say "FAILED $1 (exit $2)"; failed=1; fi
}

golden_step() {
  say "== the repository's goldens: the reference (transformers, CPU), then the CPU backend"
  SECONDS=0
  PYTHONUNBUFFERED=1 timeout 420 python3 "$HERE/make_dbrx_golden.py" --out "$WORK/goldens" \
    >"$OUT/golden.log" 2>&1
  verdict "make_dbrx_golden.py (${SECONDS} s)" $?
  grep -E "seed|Error|error" "$OUT/golden.log" | tail -12 | tee -a "$SUMMARY"
  [ -d "$WORK/goldens" ] && tar -C "$WORK/goldens" -czf "$OUT/dbrx_goldens.tar.gz" .
  SECONDS=0
  SLUICE_DBRX_GOLDENS="$WORK/goldens" SLUICE_SHARED_DIR="$WORK/shared" timeout 150 \
    "$WORK/bin/inference_tests" -tc="*repository's goldens*" --force-colors=false \
    >>"$OUT/golden.log" 2>&1
  code=$?
  grep -E "^\[doctest\] (test cases|assertions)|repository goldens checked" "$OUT/golden.log" |
    tee -a "$SUMMARY"
  verdict "cpu backend against the new goldens (${SECONDS} s)" "$code"
}

if [ "${SLUICE_GPU_CHECK:-all}" = golden ]; then
  golden_step
  say "== done: $([ $failed -eq 0 ] && echo all passed || echo some FAILED)"
  exit $failed
fi

say "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$SUMMARY"
"$SLUICE" version 2>&1 | tee -a "$SUMMARY"

say "== gpu parity tests"
SECONDS=0
# 240 s: the suite now also opens the parallel plans (up to 8 ranks on one GPU, each its own
# backend) and runs split-K at contexts up to 20,000 against the CPU reference.
timeout 240 "$WORK/bin/inference_gpu_tests" --force-colors=false --duration=true \
  >"$OUT/gpu_tests.log" 2>&1
code=$?
say "inference_gpu_tests: ${SECONDS} s"
grep -E "^\[doctest\] (test cases|assertions)|MESSAGE|max relative|mixed prefill" \
  "$OUT/gpu_tests.log" | tee -a "$SUMMARY"
verdict "inference_gpu_tests" "$code"
if [ "${SLUICE_GPU_CHECK:-all}" = tests ]; then
  exit $failed
fi

decode_bench() {
  say "== decode benchmark, DBRX layer sizes, 4 layers: Hugging Face eager, then sluice"
  SECONDS=0
  # The anchor's log stays in $WORK (its figures go to the summary, and its end too when it
  # fails), which keeps the full run at eight files in $OUT.
  PYTHONUNBUFFERED=1 timeout 150 python3 "$HERE/hf_dbrx_eager.py" --layers 4 --batches 1,8,32,128 \
    --prompt 32 --steps 8 >"$WORK/hf_eager.log" 2>&1
  local code=$?
  verdict "hf eager anchor (${SECONDS} s)" "$code"
  grep -E "^hf eager" "$WORK/hf_eager.log" | tee -a "$SUMMARY"
  [ "$code" -eq 0 ] || tail -n 20 "$WORK/hf_eager.log" | tee -a "$SUMMARY"
  SECONDS=0
  timeout 150 "$SLUICE" bench decode --backend cuda --layers 4 --weights bf16,fp8,int4 \
    --batches 1,8,32,128 --prompt-tokens 32 --decode-tokens 16 --anchor "$WORK/hf_eager.log" \
    --json >"$OUT/bench_decode_4.txt" 2>&1
  verdict "bench decode --backend cuda, 4 layers (${SECONDS} s)" $?
  grep -vE '^\{' "$OUT/bench_decode_4.txt" | grep -vE '"level"' | tee -a "$SUMMARY"
  say "== decode benchmark, 40 layers (all of DBRX), fp8"
  SECONDS=0
  # Graphs on only: the 4-layer run above measures them on and off, and these runs keep their
  # time within the limit.
  timeout 150 "$SLUICE" bench decode --backend cuda --layers 40 --weights fp8 --batches 1,8,32 \
    --prompt-tokens 32 --decode-tokens 16 --graphs on --json >"$OUT/bench_decode_40.txt" 2>&1
  verdict "bench decode --backend cuda, 40 layers fp8 (${SECONDS} s)" $?
  grep -vE '^\{' "$OUT/bench_decode_40.txt" | grep -vE '"level"' | tee -a "$SUMMARY"
  say "== decode benchmark, 40 layers (all of DBRX), int4 experts (the H100 goal)"
  SECONDS=0
  timeout 150 "$SLUICE" bench decode --backend cuda --layers 40 --weights int4 --batches 1,8,32 \
    --prompt-tokens 32 --decode-tokens 16 --graphs on --json >"$OUT/bench_decode_40_int4.txt" 2>&1
  verdict "bench decode --backend cuda, 40 layers int4 (${SECONDS} s)" $?
  grep -vE '^\{' "$OUT/bench_decode_40_int4.txt" | grep -vE '"level"' | tee -a "$SUMMARY"
  # Without --model the bench writes the small preset to a temporary folder itself (with the
  # tokenizer ranks the pack puts in share/sluice) and removes it afterwards.
  say "== serving benchmark on cuda: small preset, 16 streaming clients over HTTP"
  SECONDS=0
  timeout 240 "$SLUICE" bench serve --backend cuda --clients 16 --json \
    >"$OUT/bench_serve_cuda.txt" 2>&1
  verdict "bench serve --backend cuda, 16 clients (${SECONDS} s)" $?
  grep -vE '^\{' "$OUT/bench_serve_cuda.txt" | grep -vE '"level"' | tee -a "$SUMMARY"
  # Output overlap on the device: the tiny preset's passes are short, so the host's share of a
  # step (host_ms_per_step) shows; on, then off, appended to the same file.
  say "== output overlap on cuda: tiny preset, 16 clients, /model/overlap_output true then false"
  "$SLUICE" model init-tiny --out "$WORK/tiny_overlap" >/dev/null 2>&1
  for overlap in true false; do
    SECONDS=0
    timeout 90 "$SLUICE" bench serve --backend cuda --model "$WORK/tiny_overlap" --clients 16 \
      --requests 4 --overlap-output "$overlap" --json >"$WORK/overlap_$overlap.txt" 2>&1
    verdict "bench serve --backend cuda, tiny, overlap_output $overlap (${SECONDS} s)" $?
    cat "$WORK/overlap_$overlap.txt" >>"$OUT/bench_serve_cuda.txt"
    grep -E 'engine:|^\{' "$WORK/overlap_$overlap.txt" | tee -a "$SUMMARY"
  done
}
if [ "${SLUICE_GPU_CHECK:-all}" = bench ]; then
  decode_bench
  say "== done: $([ $failed -eq 0 ] && echo all passed || echo some FAILED)"
  exit $failed
fi

say "== sluice generate --backend cuda (tiny preset, against --backend cpu)"
"$SLUICE" model init-tiny --out "$WORK/tiny" >/dev/null 2>&1
for backend in cuda cpu; do
  timeout 60 "$SLUICE" generate --model "$WORK/tiny" --backend "$backend" --prompt "The quick brown fox" \
    --max-tokens 24 --temperature 0 --json >"$WORK/tiny_$backend.json" 2>"$WORK/tiny_$backend.err"
  say "tiny $backend: $(cat "$WORK/tiny_$backend.json")"
done
python3 - "$WORK/tiny_cuda.json" "$WORK/tiny_cpu.json" <<'PY'
import json, sys
cuda, cpu = (json.load(open(p)) for p in sys.argv[1:3])
assert cuda["backend"] == "cuda", cuda["backend"]
assert cuda["ids"] == cpu["ids"], (cuda["ids"], cpu["ids"])
PY
verdict "generate tiny: cuda ids equal cpu ids" $?

say "== sluice generate --backend cuda (golden b_d128_clip8, against the reference)"
golden="$SLUICE_SHARED_DIR/golden/dbrx/b_d128_clip8"
ids=$(python3 -c "import json;c=json.load(open('$golden/golden.json'))['cases'][1];print(','.join(map(str,c['ids'])))")
"$SLUICE" generate --model "$golden" --backend cuda --prompt-ids "$ids" --max-tokens 16 \
  --temperature 0 --json >"$WORK/golden.json" 2>&1
say "golden: $(cat "$WORK/golden.json")"
python3 - "$WORK/golden.json" "$golden/golden.json" <<'PY'
import json, sys
got = json.load(open(sys.argv[1]))
want = json.load(open(sys.argv[2]))["cases"][1]["greedy"]
assert got["backend"] == "cuda" and got["ids"] == want, (got["ids"], want)
PY
verdict "generate golden b_d128_clip8: greedy ids equal the reference" $?

serve_chat() {  # name, model folder, port: serve on cuda, one chat completion, stop
  local name=$1 model=$2 port=$3 log="$OUT/serve_$1.log"
  "$SLUICE" serve --model "$model" --backend cuda --port "$port" --data-dir "$WORK/data_$name" \
    >"$log" 2>&1 &
  local pid=$!
  # python3 rather than curl, which the GPU machine's image may lack.
  python3 - "$log" "$port" "$pid" <<'PY' | tee -a "$SUMMARY"
import json, os, re, sys, time, urllib.request
log, port, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
base = f"http://127.0.0.1:{port}"
token, deadline = None, time.time() + 90
def get(path):
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    return json.load(urllib.request.urlopen(request, timeout=30))
while time.time() < deadline:
    text = open(log).read()
    match = re.search(r"admin token: (\S+)", text)
    token = match.group(1) if match else None
    if "cannot load the model" in text or not os.path.exists(f"/proc/{pid}"):
        sys.exit("model did not load")
    try:
        if token and get("/readyz").get("status") == "ready":
            break
    except Exception:
        pass
    time.sleep(0.5)
else:
    sys.exit("server not ready in 90 s")
body = {"messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 32,
        "temperature": 0}
request = urllib.request.Request(base + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {token}",
                                          "Content-Type": "application/json"})
start = time.time()
answer = json.load(urllib.request.urlopen(request, timeout=120))
print(f"chat: {time.time() - start:.3f} s: {json.dumps(answer)}")
assert answer["object"] == "chat.completion" and answer["usage"]["completion_tokens"] > 0
PY
  local code=${PIPESTATUS[0]}
  kill -TERM $pid
  wait $pid
  grep -E '"(cuda memory plan|cuda backend ready|cuda kv cache configured|backend opened)"' "$log" |
    tee -a "$SUMMARY"
  [ "$code" -eq 0 ] && grep -q '"backend":"cuda"' "$log"
}

say "== sluice serve --backend cuda (tiny preset)"
serve_chat tiny "$WORK/tiny" 18080
verdict "serve tiny on cuda: chat completion" $?

say "== sluice serve --backend cuda (small preset)"
"$SLUICE" model init-tiny --preset small --out "$WORK/small" >/dev/null 2>&1
serve_chat small "$WORK/small" 18081
verdict "serve small on cuda: chat completion" $?

say "== decode speed, small preset (sluice generate, 64 tokens, greedy)"
for backend in cuda cpu; do
  timeout 60 "$SLUICE" generate --model "$WORK/small" --backend "$backend" --prompt "The quick brown fox" \
    --max-tokens 64 --temperature 0 --json >"$WORK/small_$backend.json" 2>/dev/null
  say "small $backend: $(python3 -c "import json;d=json.load(open('$WORK/small_$backend.json'));print(d['backend'], d['timings'])")"
done

decode_bench

say "== done: $([ $failed -eq 0 ] && echo all passed || echo some FAILED)"
exit $failed
