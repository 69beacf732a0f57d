#!/usr/bin/env bash
# The CUDA backend's checks on a GPU machine, from a pack made by scripts/gpu_pack.sh (run it as
# `bash <pack folder>/check.sh`). Logs go to $OUT (default: <pack folder>/out): summary.txt holds
# every step's verdict and the measured numbers, the other files the full outputs.
#
# SLUICE_GPU_CHECK names the steps, comma-separated, run in this order whatever the order given:
#   golden    makes the repository's goldens with the reference (transformers on this machine's
#             CPU, tests/golden/dbrx/make_dbrx_golden.py) and checks the CPU backend against them
#             (golden.log, dbrx_goldens.tar.gz: unpack into tests/golden/dbrx). With other steps
#             it runs in the background, on the CPU, while they use the GPU.
#   tests     the gpu parity tests (gpu_tests.log)
#   smoke     `sluice generate --backend cuda` on the tiny preset (against --backend cpu) and on a
#             golden checkpoint (against the reference's greedy ids); `sluice serve --backend
#             cuda` answering POST /v1/chat/completions for the tiny and the small preset
#             (serve_tiny.log, serve_small.log); decode speed of the small preset, cuda and cpu
#   decode    the decode benchmark at DBRX's layer sizes, 4 layers: Hugging Face eager
#             DbrxForCausalLM and `sluice bench decode --backend cuda` (bf16, fp8, int4 experts
#             on the CUDA cores and on the tensor cores) in the same run (bench_decode_4.txt; the
#             anchor's figures in summary.txt)
#   decode40  all 40 layers, int4 experts (the H100 goal; both kernels) then fp8, where the
#             GPU's memory holds them (bench_decode_40_int4.txt, bench_decode_40.txt)
#   serve     `sluice bench serve --backend cuda` on the small preset with 16 clients, and on the
#             tiny preset with output overlap on and off (bench_serve_cuda.txt)
#   cpuserve  `sluice bench serve --backend cpu --clients 16` on this machine's cores
#             (bench_serve_cpu.txt): the CPU serving goal needs more than two cores
#   profile   Nsight Compute over a 1-layer int4 decode at batches 1 and 8, the expert products on
#             the CUDA cores and on the tensor cores: time and bandwidth per kernel (ncu_int4.txt)
#   encoder   looks for a MiniLM, BGE, E5 or GTE sentence-transformers model on this machine's
#             disk (tools/bench/st_embedding_server.py --find; nothing is downloaded), serves
#             it as /v1/embeddings on the GPU and runs `sluice bench retrieval` on SciFact with
#             `--embedder http` (bench_retrieval_encoder.txt); says so when there is none
# Shorthands: all (the default) = tests,smoke,decode,decode40,serve; bench =
# tests,decode,decode40,serve. A lent GPU machine hands back at most eight files from $OUT:
# golden,all writes ten, so leave smoke out when the goldens are made in the same run.
#
# SLUICE_GPU_DEADLINE_S: seconds after the start by which every step must have ended. Each
# step's own time limit is cut to what is left, and a step that would get under 20 s is skipped
# and named as skipped, so that a run inside a device lease ends on time with what it measured.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${OUT:-$HERE/out}"
WORK="${SLUICE_GPU_WORK:-/tmp/sluice-gpu-check}"
STARTED=$(date +%s)
DEADLINE_S="${SLUICE_GPU_DEADLINE_S:-}"
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
# without repacking).
if [ -f "$HERE/inference_gpu_tests" ]; then
  cp "$HERE/inference_gpu_tests" "$WORK/bin/inference_gpu_tests"
fi
failed=0

say() { echo "$*" | tee -a "$SUMMARY"; }
verdict() {  # name, exit code
  if [ "$2" -eq 0 ]; then say "ok     $1"; else say "FAILED $1 (exit $2)"; failed=1; fi
}
# within SECONDS_WANTED: prints the time limit a command gets, its own or what is left before
# the deadline (less a margin for the step's reporting); fails, saying so, when under 20 s is
# left for it. Use: `t=$(within 150 "what") || continue-or-return`.
within() {
  local wanted=$1 what=$2
  if [ -z "$DEADLINE_S" ]; then echo "$wanted"; return 0; fi
  local left=$((STARTED + DEADLINE_S - $(date +%s) - 5))
  if [ "$left" -lt 20 ]; then
    say "skipped $what: ${left} s left before the deadline" >&2
    return 1
  fi
  echo $((left < wanted ? left : wanted))
}

# measured WHAT LIMIT FILE COMMAND...: COMMAND under the step's time limit (within), its output
# in FILE, then its verdict and its table (the output less JSON and log lines) in the summary.
# Fails when skipped for the deadline.
measured() {
  local what=$1 wanted=$2 file=$3 t
  shift 3
  t=$(within "$wanted" "$what") || return 1
  SECONDS=0
  timeout "$t" "$@" >"$file" 2>&1
  verdict "$what (${SECONDS} s)" $?
  grep -vE '^\{' "$file" | grep -vE '"level"' | tee -a "$SUMMARY"
}

golden_step() {
  say "== the repository's goldens: the reference (transformers, CPU), then the CPU backend"
  local t
  t=$(within 420 "make_dbrx_golden.py") || return 0
  SECONDS=0
  # SLUICE_GOLDEN_ONLY=NAME makes that configuration alone.
  PYTHONUNBUFFERED=1 timeout "$t" python3 "$HERE/make_dbrx_golden.py" --out "$WORK/goldens" \
    ${SLUICE_GOLDEN_ONLY:+--only "$SLUICE_GOLDEN_ONLY"} \
    >"$OUT/golden.log" 2>&1
  verdict "make_dbrx_golden.py (${SECONDS} s)" $?
  grep -E "seed|note:|FAILED|not made|Error|error" "$OUT/golden.log" | tail -16 | tee -a "$SUMMARY"
  [ -d "$WORK/goldens" ] && tar -C "$WORK/goldens" -czf "$OUT/dbrx_goldens.tar.gz" .
  t=$(within 150 "the cpu backend against the new goldens") || return 0
  SECONDS=0
  SLUICE_DBRX_GOLDENS="$WORK/goldens" SLUICE_SHARED_DIR="$WORK/shared" timeout "$t" \
    "$WORK/bin/inference_tests" -tc="*repository's goldens*" --force-colors=false \
    >>"$OUT/golden.log" 2>&1
  code=$?
  grep -E "^\[doctest\] (test cases|assertions)|repository goldens checked" "$OUT/golden.log" |
    tee -a "$SUMMARY"
  verdict "cpu backend against the new goldens (${SECONDS} s)" "$code"
}

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


tests_step() {
  say "== gpu parity tests"
  local t
  # 240 s: the suite also opens the parallel plans (up to 8 ranks on one GPU, each its own
  # backend) and runs split-K at contexts up to 20,000 against the CPU reference.
  t=$(within 240 "inference_gpu_tests") || return 0
  SECONDS=0
  timeout "$t" "$WORK/bin/inference_gpu_tests" --force-colors=false --duration=true \
    >"$OUT/gpu_tests.log" 2>&1
  local code=$?
  say "inference_gpu_tests: ${SECONDS} s"
  grep -E "^\[doctest\] (test cases|assertions)|MESSAGE|max relative|mixed prefill|ERROR|FATAL|SKIPPED" \
    "$OUT/gpu_tests.log" | head -60 | tee -a "$SUMMARY"
  verdict "inference_gpu_tests" "$code"
}

smoke_step() {
  local t backend
  say "== sluice generate --backend cuda (tiny preset, against --backend cpu)"
  "$SLUICE" model init-tiny --out "$WORK/tiny" >/dev/null 2>&1
  for backend in cuda cpu; do
    t=$(within 60 "generate tiny $backend") || return 0
    timeout "$t" "$SLUICE" generate --model "$WORK/tiny" --backend "$backend" \
      --prompt "The quick brown fox" --max-tokens 24 --temperature 0 --json \
      >"$WORK/tiny_$backend.json" 2>"$WORK/tiny_$backend.err"
    say "tiny $backend: $(cat "$WORK/tiny_$backend.json") $(tail -n 3 "$WORK/tiny_$backend.err")"
  done
  python3 - "$WORK/tiny_cuda.json" "$WORK/tiny_cpu.json" <<'PY'
import json, sys
cuda, cpu = (json.load(open(p)) for p in sys.argv[1:3])
assert cuda["backend"] == "cuda", cuda["backend"]
assert cuda["ids"] == cpu["ids"], (cuda["ids"], cpu["ids"])
PY
  verdict "generate tiny: cuda ids equal cpu ids" $?

  say "== sluice generate --backend cuda (golden b_d128_clip8, against the reference)"
  local golden="$SLUICE_SHARED_DIR/golden/dbrx/b_d128_clip8" ids
  ids=$(python3 -c "import json;c=json.load(open('$golden/golden.json'))['cases'][1];print(','.join(map(str,c['ids'])))")
  t=$(within 60 "generate golden") || return 0
  timeout "$t" "$SLUICE" generate --model "$golden" --backend cuda --prompt-ids "$ids" \
    --max-tokens 16 --temperature 0 --json >"$WORK/golden.json" 2>&1
  say "golden: $(cat "$WORK/golden.json")"
  python3 - "$WORK/golden.json" "$golden/golden.json" <<'PY'
import json, sys
got = json.load(open(sys.argv[1]))
want = json.load(open(sys.argv[2]))["cases"][1]["greedy"]
assert got["backend"] == "cuda" and got["ids"] == want, (got["ids"], want)
PY
  verdict "generate golden b_d128_clip8: greedy ids equal the reference" $?

  say "== sluice serve --backend cuda (tiny preset)"
  within 100 "serve tiny" >/dev/null || return 0
  serve_chat tiny "$WORK/tiny" 18080
  verdict "serve tiny on cuda: chat completion" $?

  say "== sluice serve --backend cuda (small preset)"
  within 120 "serve small" >/dev/null || return 0
  "$SLUICE" model init-tiny --preset small --out "$WORK/small" >/dev/null 2>&1
  serve_chat small "$WORK/small" 18081
  verdict "serve small on cuda: chat completion" $?

  say "== decode speed, small preset (sluice generate, 64 tokens, greedy)"
  for backend in cuda cpu; do
    t=$(within 60 "small generate $backend") || return 0
    timeout "$t" "$SLUICE" generate --model "$WORK/small" --backend "$backend" \
      --prompt "The quick brown fox" --max-tokens 64 --temperature 0 --json \
      >"$WORK/small_$backend.json" 2>/dev/null
    say "small $backend: $(python3 -c "import json;d=json.load(open('$WORK/small_$backend.json'));print(d['backend'], d['timings'])" 2>&1)"
  done
}

decode_step() {
  local t code
  say "== decode benchmark, DBRX layer sizes, 4 layers: Hugging Face eager, then sluice"
  t=$(within 150 "hf eager anchor") || return 0
  SECONDS=0
  # The anchor's log stays in $WORK (its figures go to the summary, and its end too when it
  # fails), which keeps a full run within eight files in $OUT.
  PYTHONUNBUFFERED=1 timeout "$t" python3 "$HERE/hf_dbrx_eager.py" --layers 4 \
    --batches 1,8,32,128 --prompt 32 --steps 8 >"$WORK/hf_eager.log" 2>&1
  code=$?
  verdict "hf eager anchor (${SECONDS} s)" "$code"
  grep -E "^hf eager" "$WORK/hf_eager.log" | tee -a "$SUMMARY"
  [ "$code" -eq 0 ] || tail -n 20 "$WORK/hf_eager.log" | tee -a "$SUMMARY"
  measured "bench decode --backend cuda, 4 layers" 150 "$OUT/bench_decode_4.txt" \
    "$SLUICE" bench decode --backend cuda --layers 4 --weights bf16,fp8,int4 \
    --batches 1,8,32,128 --prompt-tokens 32 --decode-tokens 16 --anchor "$WORK/hf_eager.log" \
    --int4-kernel both --json
}

decode40_step() {
  local weights file
  # Graphs on only: the 4-layer run measures them on and off, and these keep within the limit.
  for weights in int4 fp8; do
    file="$OUT/bench_decode_40$([ "$weights" = int4 ] && echo _int4).txt"
    say "== decode benchmark, 40 layers (all of DBRX), $weights"
    measured "bench decode --backend cuda, 40 layers $weights" 150 "$file" \
      "$SLUICE" bench decode --backend cuda --layers 40 --weights "$weights" \
      --batches 1,8,32 --prompt-tokens 32 --decode-tokens 16 --graphs on --int4-kernel both \
      --json || return 0
  done
}

serve_step() {
  local t overlap
  # Without --model the bench writes the small preset to a temporary folder itself (with the
  # tokenizer ranks the pack puts in share/sluice) and removes it afterwards.
  say "== serving benchmark on cuda: small preset, 16 streaming clients over HTTP"
  measured "bench serve --backend cuda, 16 clients" 240 "$OUT/bench_serve_cuda.txt" \
    "$SLUICE" bench serve --backend cuda --clients 16 --json || return 0
  # Output overlap on the device: the tiny preset's passes are short, so the host's share of a
  # step (host_ms_per_step) shows; on, then off, appended to the same file.
  say "== output overlap on cuda: tiny preset, 16 clients, /model/overlap_output true then false"
  "$SLUICE" model init-tiny --out "$WORK/tiny_overlap" >/dev/null 2>&1
  for overlap in true false; do
    t=$(within 90 "bench serve, tiny, overlap $overlap") || return 0
    SECONDS=0
    timeout "$t" "$SLUICE" bench serve --backend cuda --model "$WORK/tiny_overlap" --clients 16 \
      --requests 4 --overlap-output "$overlap" --json >"$WORK/overlap_$overlap.txt" 2>&1
    verdict "bench serve --backend cuda, tiny, overlap_output $overlap (${SECONDS} s)" $?
    cat "$WORK/overlap_$overlap.txt" >>"$OUT/bench_serve_cuda.txt"
    grep -E 'engine:|^\{' "$WORK/overlap_$overlap.txt" | tee -a "$SUMMARY"
  done
}

cpuserve_step() {
  # The CPU serving goal (16 clients >= 6x batch 1) on this machine's cores, which the
  # development machine's two cannot show.
  say "== serving benchmark on the cpu: small preset, 16 streaming clients, $(nproc) cores"
  measured "bench serve --backend cpu, 16 clients" 300 "$OUT/bench_serve_cpu.txt" \
    "$SLUICE" bench serve --backend cpu --clients 16 --json
}

profile_step() {
  local t code
  say "== where int4 decode time goes: Nsight Compute, 1 layer, batches 1 and 8, both kernels"
  if ! command -v ncu >/dev/null; then
    say "skipped the profile: no ncu on this machine"
    return 0
  fi
  t=$(within 240 "ncu over int4 decode") || return 0
  SECONDS=0
  timeout "$t" ncu --clock-control none --csv --print-units base \
    --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum \
    "$SLUICE" bench decode --backend cuda --layers 1 --weights int4 --batches 1,8 \
    --prompt-tokens 1 --decode-tokens 4 --warmup-tokens 1 --graphs off --int4-kernel both \
    >"$WORK/ncu_int4.csv" 2>"$WORK/ncu_int4.log"
  code=$?
  verdict "ncu over int4 decode (${SECONDS} s)" "$code"
  [ "$code" -eq 0 ] || tail -n 20 "$WORK/ncu_int4.log" | tee -a "$SUMMARY"
  python3 "$HERE/ncu_kernels.py" "$WORK/ncu_int4.csv" --skip 'fill_random|quantize|fill_constant' \
    >"$OUT/ncu_int4.txt" 2>&1
  tee -a "$SUMMARY" <"$OUT/ncu_int4.txt"
}

encoder_step() {
  local model line name dim pid
  say "== a sentence encoder on this machine's disk, and the retrieval benchmark (SciFact) with it"
  model=$(timeout 60 python3 "$HERE/st_embedding_server.py" --find 2>"$WORK/encoder_find.log")
  head -n 20 "$WORK/encoder_find.log" | tee -a "$SUMMARY"
  if [ -z "$model" ]; then
    say "skipped the encoder benchmark: no MiniLM, BGE, E5 or GTE model on disk"
    return 0
  fi
  within 120 "the embedding server on $model" >/dev/null || return 0
  python3 "$HERE/st_embedding_server.py" --model "$model" --port 18011 >"$WORK/encoder.log" 2>&1 &
  pid=$!
  for _ in $(seq 120); do
    grep -q "^serving" "$WORK/encoder.log" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  # The library may warn before the server's own line.
  line=$(grep -m 1 "^serving" "$WORK/encoder.log")
  if [ -z "$line" ]; then
    tail -n 20 "$WORK/encoder.log" | tee -a "$SUMMARY"
    kill "$pid" 2>/dev/null
    verdict "embedding server on $model" 1
    return 0
  fi
  say "$line"
  name=$(echo "$line" | awk '{ print $2 }')
  dim=$(echo "$line" | sed -n 's/.*(\([0-9]*\) dimensions).*/\1/p')
  measured "bench retrieval, SciFact, $name" 300 "$OUT/bench_retrieval_encoder.txt" \
    "$SLUICE" bench retrieval --dataset "$SLUICE_SHARED_DIR/data/scifact" \
    --mode lexical,vector,hybrid --fusion rrf,weighted --embedder http \
    --embedder-endpoint http://127.0.0.1:18011 --embedder-model "$name" --dim "$dim" --json
  kill "$pid" 2>/dev/null
}

steps=",${SLUICE_GPU_CHECK:-all},"
steps=${steps//,all,/,tests,smoke,decode,decode40,serve,}
steps=${steps//,bench,/,tests,decode,decode40,serve,}
wants() { [[ "$steps" == *",$1,"* ]]; }

golden_pid=
if wants golden; then
  if [ "$steps" = ",golden," ]; then
    golden_step
  else
    # On the CPU while the GPU steps run; its lines join the summary when it ends.
    # Four threads leave the cores to the tests' cpu references; the goldens' models are tiny.
    (SUMMARY="$WORK/golden_summary.txt" failed=0 OMP_NUM_THREADS=4
      export OMP_NUM_THREADS; golden_step >/dev/null; exit $failed) &
    golden_pid=$!
  fi
fi
if [ "$steps" != ",golden," ]; then
  say "== machine"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$SUMMARY"
  "$SLUICE" version 2>&1 | tee -a "$SUMMARY"
fi
wants tests && tests_step
wants smoke && smoke_step
wants decode && decode_step
wants decode40 && decode40_step
wants serve && serve_step
wants cpuserve && cpuserve_step
wants profile && profile_step
wants encoder && encoder_step
if [ -n "$golden_pid" ]; then
  wait "$golden_pid"
  verdict "golden step (in the background)" $?
  cat "$WORK/golden_summary.txt" >>"$SUMMARY"
  cat "$WORK/golden_summary.txt"
fi
say "== done in $(( $(date +%s) - STARTED )) s: $([ $failed -eq 0 ] && echo all passed || echo some FAILED)"
exit $failed
