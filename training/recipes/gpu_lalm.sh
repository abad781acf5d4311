#!/bin/bash
# The audio-language model's sweep on a GPU machine without internet, in one timed command
# (issue 20): convert the base LLM, synthesize training scenes with their QA and a selection
# set, cache the encoder's outputs (binaural and mono), train the full model (align, then
# SFT from it) and, under the same SFT steps and batch, the ablation and the baselines, score
# every run on the selection set, and leave only small artifacts in OUT_DIR.
#
#   bash training/recipes/gpu_lalm.sh OUT_DIR [SCENES] [TOTAL_SECONDS] [DEVICE]
#
# SCENES: training scenes (default 3000, ~53,000 QA items); TOTAL_SECONDS: the whole job's
# budget (default 540: a device command may run 600 s, the bootstrap's ~30 s included); DEVICE: cuda
# (default) or cpu. Run from the repository root. On a GPU machine of this project, with the
# parts of `make gpu-llm` (.gpu-llm/p1..pN: the GGUF and the wheels in 24 MB parts, one device
# call each; the script unpacks them, installs the wheels and sets BINAURA_BASE_GGUF):
#   bash training/recipes/gpu_lalm.sh $OUT 3000 540 cuda
# (or, with ../shared/gpu/stage.sh's 45 MB parts, which no longer fit a call beside this
# working tree: eval "$(bash .gpu/pN/bootstrap.sh)" first)
# with the synthesis kit in .kit (`binaura synth-kit --out .kit --per-voice 40`, carried;
# without .kit the system's TTS and slab are used, as here). The same command runs on a CPU
# for a check with a tiny random LLM:
#   TINY=1 bash training/recipes/gpu_lalm.sh /tmp/gl-check 6 300 cpu
#
# Runs (RUNS selects a subset, in this order; e.g. RUNS="dense mono"):
#   dense     train align (projector only), then train sft --init that model: the full model
#   concat    sft --fusion concat      (ablation: concatenation + MLP)
#   spatial   sft --fusion spatial     (ablation: spatial stream only)
#   semantic  sft --fusion semantic    (ablation: semantic stream only)
#   mono      sft --mono               (baseline: the encoder hears the L+R average)
#   cascade   sft --cascade            (baseline: the encoder's decoded sources as text)
#   noaudio   sft --no-audio           (baseline: text-only, the same LLM without audio;
#                                       "text-only" is accepted as its name)
# Every SFT run has the same steps and batch; with ALIGN_ALL=1 the runs with a projector
# (concat, spatial, semantic, mono) also get their own align stage first, as dense does.
# Then `binaura bench qa` scores every run's model/, the text-only prior and chance on the
# selection set: one process per model, all at once (BENCH_PAR), the LLM and the encoder on
# DEVICE; the per-model results are merged into select_qa.json (the format of one
# `bench qa --model a,b,...` run). Scoring on a GPU goes through a thin wrapper of
# `export.cli bench qa` that moves each LalmAnswerer (encoder and LLM) to the device and
# answers a clip's questions in one batch of BENCH_BATCH (bench qa itself runs on the CPU,
# ~1 s a clip for the encoder alone).
#
# The selection set: SELECT_SCENES (default 300) scenes of preset bench, seed SELECT_SEED
# (default 20261201, never the benchmark's 20261126), drawn once: the rule that picks between
# runs reads its scores. A synthesis kit holds no held-out voice, so with .kit the set is drawn
# with {"held_out_instances": false} (the benchmark's heads, split and rooms; the training
# voices and sound instances); it is then the same set on every kit machine, not the one
# rendered with the system's TTS (docs/lalm.md's set): compare GPU and CPU runs on one set
# only. SELECT_CONFIG (a SynthConfig JSON) replaces that choice; SELECT_DATA names a selection
# set rendered elsewhere (a dataset folder with audio/, e.g. carried) and skips the drawing.
#
# Environment (defaults in brackets):
#   BASE          an HF model folder to train on, skipping the GGUF conversion [convert
#                 BINAURA_BASE_GGUF into $WORK/base]
#   TINY=1        the CPU check: a tiny random LLM, 3 selection scenes, 2 steps, batch 2,
#                 1 validation clip, no run skipped for time
#   RUNS          [dense concat spatial semantic mono cascade noaudio]
#   STEPS, BATCH  SFT steps and batch [BATCH 64; STEPS sized so the sweep fits TOTAL_SECONDS:
#                 (time left after the caches - SCORE_S - per-run overheads / PAR) x RATE
#                 / (BATCH x (SFT runs + ALIGN_FRAC x align runs)); at least 10]. A run that
#                 could not end before the time kept for scoring is skipped (logged).
#   ALIGN_STEPS   align steps [STEPS x ALIGN_FRAC, ALIGN_FRAC 0.5]; ALIGN_ALL [0]
#   RATE          training samples/s of all concurrent runs together, for the sizing [600;
#                 ~790/s was measured for one LoRA run at 256 x 128 tokens on an H200; the
#                 Trainer here tokenizes in its one process (~1 ms a sample), so less is
#                 assumed; summary.json records each run's real samples/s to recalibrate]
#   RUN_OVERHEAD_S  seconds a run spends outside its steps (start, load, save) [20]
#   PAR           training runs at once on the GPU [2; 1 on the CPU]: it hides each run's start
#                 and CPU-side batching; a run at batch 64 needs roughly 25-35 GB of GPU memory
#                 (fp32 base, LoRA, prompts of ~100-210 tokens), so keep PAR x BATCH <= ~256
#   TF32          1: training matmuls in TF32 (TORCH_ALLOW_TF32_CUBLAS_OVERRIDE) on CUDA [1]
#   EVAL_EVERY    validation/checkpoint interval [max(1, STEPS / 4)]; VAL_CLIPS held out [40]
#   ALIGN_LR, SFT_LR  [the CLI's: 1e-3, 2e-4]; LORA_R [16]; TOKENS (audio embeddings) [10]
#   SYNTH_SEED    [21]; SELECT_SCENES [300]; SELECT_SEED [20261201]; SELECT_CONFIG; SELECT_DATA
#   SCORE_S       seconds kept for scoring [200; 60 on the CPU]; BENCH_PAR [9; 2 on the CPU];
#   BENCH_BATCH   questions per generate call on the device [32]
#   CACHE_BATCH   clips per encoder pass for the caches [64 on CUDA]
#   PACK          runs whose model/ comes back, in priority order [dense, then RUNS' order]
#   WORK          scratch folder [/tmp/binaura-gpu-lalm]; data is reused there when a rerun
#                 asks for the same scenes (a warm machine), every run is retrained
#   PYTHON        [python3]
#
# What comes back: a device returns at most 8 files from $OUT, 16 MiB each, 64 MiB in all,
# at most 2 folders down; so OUT_DIR (which may be $OUT itself) receives at most 8 files:
#   job.log          this log: each stage's seconds, the runs' sizes, the selection table,
#                    the summary table
#   select_qa.json   `bench qa` metrics of every run and baseline on the selection set
#   summary.json     per run: steps, batch, seconds, last train/validation loss, selection
#                    overall/L1/L2/L3; the sizing and the stage seconds
#   runs.tar.gz      every run's history.json, loss.png, model/lalm.json (align runs too),
#                    the two datasets' synth_config.json
#   model_NAME.tar   a run's model/ folder (projector + LoRA, fp16 safetensors, ~12 MB for
#                    SmolLM2-135M at r 16), as many as fit: dense first (packed as soon as it
#                    is trained, so a command stopped at its limit still returns it), then PACK's
#                    order while the file count and 64 MiB allow; one over 16 MiB is split
#                    into model_NAME.tar.partNN (`cat` them back). Unpack with
#                    `tar -xf model_dense.tar` -> dense/model. When the base was converted
#                    from BINAURA_BASE_GGUF, the packed lalm.json names the embedded default
#                    (base: null; its fingerprint is checked on load) instead of $WORK/base.
# Everything else (data, caches, checkpoints) stays in $WORK.
set -uo pipefail
t0=$(date +%s)
out=${1:?usage: gpu_lalm.sh OUT_DIR [SCENES] [TOTAL_SECONDS] [DEVICE]}
scenes=${2:-3000}
total=${3:-540}
device=${4:-cuda}
py=${PYTHON:-python3}
work=${WORK:-/tmp/binaura-gpu-lalm}
mkdir -p "$out" "$work"
out=$(cd "$out" && pwd)
log="$out/job.log"
exec > >(tee -a "$log") 2>&1
say() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
times="$work/times.tsv"
: > "$times"
# stage NAME CMD...: run CMD, log and record its seconds (rc kept)
stage() {
  local name=$1; shift
  local s; s=$(date +%s)
  "$@"; local rc=$?
  local d=$(( $(date +%s) - s ))
  printf '%s\t%s\t%s\n' "$name" "$d" "$rc" >> "$times"
  say "$name: $d s$([ $rc -ne 0 ] && echo " (FAILED, rc $rc)")"
  return $rc
}
cores=$(nproc 2>/dev/null || echo 2)
# throttle N: wait until fewer than N of the jobs in pids run (a bare `wait` would also wait
# for the log's tee, a process substitution, in bash >= 5.1)
throttle() {
  local n=$1 alive p
  while :; do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
    [ $alive -lt "$n" ] && return 0
    sleep 1
  done
}
on_gpu=0; [ "$device" != "cpu" ] && on_gpu=1

if [ -n "${TINY:-}" ]; then
  select_scenes=${SELECT_SCENES:-3}; steps=${STEPS:-2}; batch=${BATCH:-2}; val_clips=${VAL_CLIPS:-1}
else
  select_scenes=${SELECT_SCENES:-300}; steps=${STEPS:-}; batch=${BATCH:-64}; val_clips=${VAL_CLIPS:-40}
fi
select_seed=${SELECT_SEED:-20261201}
synth_seed=${SYNTH_SEED:-21}
if [ "$select_seed" = "20261126" ]; then say "SELECT_SEED is the benchmark's seed: pick another"; exit 2; fi
if [ $on_gpu = 1 ]; then par=${PAR:-2}; bench_par=${BENCH_PAR:-9}; score_s=${SCORE_S:-200}
else par=${PAR:-1}; bench_par=${BENCH_PAR:-2}; score_s=${SCORE_S:-60}; fi

# GGUF + Python 3.12 wheels in parts (make gpu-llm; stdlib only): on the GPU, or with GPU_ASSETS=1
if { [ $on_gpu = 1 ] || [ "${GPU_ASSETS:-0}" = 1 ]; } && ls .gpu-llm/p*/assets.tar.part >/dev/null 2>&1; then
  assets=$(PYTHONPATH="$PWD" $py -m training.recipes.gpu_assets unpack --parts .gpu-llm --to "$work/assets") \
    || { say "GPU assets did not unpack"; exit 3; }
  eval "$assets" || { say "GPU assets: bad environment"; exit 3; }
  say "from .gpu-llm: ${BINAURA_BASE_GGUF:-no GGUF}, ${BINAURA_GPU_WHEELS:-no wheels}"
fi
shopt -s nullglob; wheels=(.whl/*.whl); [ -n "${BINAURA_GPU_WHEELS:-}" ] && wheels+=("$BINAURA_GPU_WHEELS"/*.whl); shopt -u nullglob
if [ ${#wheels[@]} -gt 0 ]; then
  $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$work/site" "${wheels[@]}" \
    || { say "wheel install failed"; exit 3; }
  export PYTHONPATH="$work/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
kit=0
if [ -f .kit/kit.json ]; then export BINAURA_SYNTH_KIT="$PWD/.kit"; kit=1; else unset BINAURA_SYNTH_KIT; fi
say "gpu_lalm: out $out, $scenes scenes, $total s, device $device, $cores cores, kit $kit${TINY:+, TINY}"
[ $on_gpu = 1 ] && { nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true; }
$py -c "import sys, numpy, torch, transformers, peft; print(sys.version.split()[0], 'numpy', numpy.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'cuda', torch.cuda.is_available())" \
  || { say "python environment incomplete"; exit 3; }
rm -f "$out"/model_*.tar "$out"/model_*.tar.part* "$out/runs.tar.gz" "$out/select_qa.json" "$out/summary.json"

# ---- runs ------------------------------------------------------------------------------------
runs=()
for r in ${RUNS:-dense concat spatial semantic mono cascade noaudio}; do
  [ "$r" = "text-only" ] && r=noaudio
  case $r in dense|concat|spatial|semantic|mono|cascade|noaudio) runs+=("$r");;
    *) say "RUNS: unknown run '$r' (dense concat spatial semantic mono cascade noaudio)"; exit 2;; esac
done
sft_flags() {  # the run's model flags
  case $1 in
    dense) echo "--fusion dense";; concat|spatial|semantic) echo "--fusion $1";;
    mono) echo "--mono";; cascade) echo "--cascade";; noaudio) echo "--no-audio";;
  esac
}
has_align() { [ "$1" = dense ] || { [ "${ALIGN_ALL:-0}" = 1 ] && case $1 in concat|spatial|semantic|mono) true;; *) false;; esac; }; }
n_align=0; need_mono=0
for r in "${runs[@]}"; do has_align "$r" && n_align=$((n_align + 1)); [ "$r" = mono ] && need_mono=1; done

# ---- 1. base LLM -----------------------------------------------------------------------------
portable=0
if [ -n "${TINY:-}" ]; then
  base="$work/tiny"
  stage base-tiny $py -c "from training.models.llm import save_tiny_llm; save_tiny_llm('$base')" || exit 4
elif [ -n "${BASE:-}" ]; then
  base=$BASE
  say "base: $base (given)"
else
  base="$work/base"
  gguf=${BINAURA_BASE_GGUF:-}
  [ -f "$gguf" ] || { say "no base: set BINAURA_BASE_GGUF (bootstrap.sh exports it) or BASE"; exit 4; }
  if [ -f "$base/binaura_manifest.json" ] && [ "$(cat "$base/.from" 2>/dev/null)" = "$gguf" ]; then
    say "base: $base (converted earlier from $gguf)"
  else
    rm -rf "$base"
    stage convert-gguf $py -m training.models.llm_setup --convert "$gguf" --out "$base" --quiet || exit 4
    echo "$gguf" > "$base/.from"
  fi
  portable=1
fi

# ---- 2. data ---------------------------------------------------------------------------------
train_cfg=(); select_cfg=()
if ! $py -c "import pyroomacoustics" 2>/dev/null; then
  say "pyroomacoustics does not import here: anechoic training scenes only"
  echo '{"p_reverberant": 0.0}' > "$work/anechoic.json"
  train_cfg=(--config "$work/anechoic.json")
fi
if [ -n "${SELECT_CONFIG:-}" ]; then
  select_cfg=(--config "$SELECT_CONFIG")
elif [ $kit = 1 ]; then
  echo '{"held_out_instances": false}' > "$work/select_kit.json"  # a kit has no held-out voice
  select_cfg=(--config "$work/select_kit.json")
fi
if [ ${#select_cfg[@]} -gt 0 ] && ! $py -c "import pyroomacoustics" 2>/dev/null; then
  say "the selection set needs pyroomacoustics (its rooms); install it"; exit 4
fi
# synth NAME DIR PRESET N SEED CONFIG...: reuses DIR when it was drawn the same way (warm rerun)
synth() {
  local name=$1 dir=$2 preset=$3 n=$4 seed=$5; shift 5
  local recipe="$preset $n $seed kit=$kit $*"
  [ $# -ge 2 ] && recipe="$recipe $(tr -d ' \n' < "$2")"
  if [ -f "$dir/qa.jsonl" ] && [ "$(cat "$dir/.recipe" 2>/dev/null)" = "$recipe" ]; then
    say "$name: reusing $dir ($recipe)"; return 0
  fi
  rm -rf "$dir"
  OMP_NUM_THREADS=1 stage "$name" $py -m export.cli synth --preset "$preset" --scenes "$n" --seed "$seed" \
    --out "$dir" --quiet "$@" || return 1
  echo "$recipe" > "$dir/.recipe"
}
synth synth-train "$work/train" train "$scenes" "$synth_seed" "${train_cfg[@]}" || { say "synthesis failed"; exit 4; }
if [ -n "${SELECT_DATA:-}" ]; then  # a selection set rendered elsewhere (e.g. carried)
  [ -f "$SELECT_DATA/qa.jsonl" ] || { say "SELECT_DATA=$SELECT_DATA: no qa.jsonl"; exit 4; }
  select_dir=$(cd "$SELECT_DATA" && pwd)
  say "selection set: $select_dir (given)"
else
  select_dir="$work/select"
  synth synth-select "$select_dir" bench "$select_scenes" "$select_seed" "${select_cfg[@]}" || { say "synthesis failed"; exit 4; }
fi
say "train: $(wc -l < "$work/train/scenes.jsonl") scenes, $(wc -l < "$work/train/qa.jsonl") QA; select: $(wc -l < "$select_dir/scenes.jsonl") scenes, $(wc -l < "$select_dir/qa.jsonl") QA"

# ---- 3. encoder-output caches ----------------------------------------------------------------
cache() {  # cache DIR MONO
  [ -f "$1/meta.json" ] && { say "cache $1 exists"; return 0; }
  local workers=1 cbatch=${CACHE_BATCH:-}
  [ $on_gpu = 1 ] && { workers=$cores; cbatch=${cbatch:-64}; }
  OMP_NUM_THREADS=$([ $on_gpu = 1 ] && echo 1 || echo "$cores") $py -c "
from training.recipes.lalm_cache import build_encoder_cache
build_encoder_cache('$work/train', '$1', mono=$2, progress=False, device='$device',
                    batch_size=${cbatch:-None}, workers=$workers)"
}
stage cache-binaural cache "$work/train/encoder-outputs" False || { say "encoder cache failed"; exit 5; }
if [ $need_mono = 1 ]; then
  stage cache-mono cache "$work/train/encoder-outputs-mono" True || { say "mono encoder cache failed"; exit 5; }
fi

# ---- 4. sizing -------------------------------------------------------------------------------
n_runs=$(( ${#runs[@]} + n_align ))
align_frac=${ALIGN_FRAC:-0.5}
if [ -z "$steps" ]; then
  left=$(( total - ($(date +%s) - t0) - score_s - 15 ))
  steps=$($py -c "
left, n, ovh, par, rate, batch = $left, $n_runs, ${RUN_OVERHEAD_S:-20}, $par, ${RATE:-600}, $batch
units = ${#runs[@]} + $align_frac * $n_align
print(max(10, int((left - n * ovh / par) * rate / (batch * units))))")
  say "sizing: $left s for $n_runs trainings (rate ${RATE:-600}/s, overhead ${RUN_OVERHEAD_S:-20} s, $par at once) -> $steps steps x $batch"
fi
align_steps=${ALIGN_STEPS:-$($py -c "import math; print(max(1, math.ceil($steps * $align_frac)))")}
eval_every=${EVAL_EVERY:-$(( steps / 4 > 0 ? steps / 4 : 1 ))}
[ -n "${TINY:-}" ] && eval_every=${EVAL_EVERY:-$steps}  # one validation pass: the CPU is slow at it
say "runs: ${runs[*]}; SFT $steps steps x $batch; align $align_steps steps x $batch ($n_align align run(s)); eval every $eval_every; $par at once"

# ---- 5. training -----------------------------------------------------------------------------
mkdir -p "$work/runs"
rm -rf "$work/runs"/*
tf32=(); [ $on_gpu = 1 ] && [ "${TF32:-1}" = 1 ] && tf32=(env TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1)
common=(--data "$work/train" --base "$base" --device "$device" --batch-size "$batch" --eval-every "$eval_every"
        --val-clips "$val_clips" --tokens "${TOKENS:-10}" --lora-r "${LORA_R:-16}" --quiet)
deadline=$(( t0 + total - score_s ))  # a run not started by then is skipped (not with TINY: a check runs all)
[ -n "${TINY:-}" ] && deadline=$(( t0 + 1000000 ))
train_one() {  # train_one RUN
  local r=$1 init=() flags need
  flags=$(sft_flags "$r")
  # the run's expected seconds at RATE shared by PAR runs (+ its align stage)
  need=$(( ${RUN_OVERHEAD_S:-20} + steps * batch * par / ${RATE:-600} ))
  has_align "$r" && need=$(( need + ${RUN_OVERHEAD_S:-20} + align_steps * batch * par / ${RATE:-600} ))
  if [ $(( $(date +%s) + need )) -gt $deadline ]; then
    say "$r: skipped (needs ~$need s; the time left is kept for scoring)"; return 1
  fi
  if has_align "$r"; then
    # shellcheck disable=SC2086
    stage "train-$r-align" "${tf32[@]}" $py -m export.cli train align "${common[@]}" $flags --steps "$align_steps" \
      ${ALIGN_LR:+--lr $ALIGN_LR} --out "$work/runs/$r-align" || return 1
    init=(--init "$work/runs/$r-align/model")
  fi
  # shellcheck disable=SC2086
  stage "train-$r" "${tf32[@]}" $py -m export.cli train sft "${common[@]}" $flags --steps "$steps" \
    ${SFT_LR:+--lr $SFT_LR} "${init[@]}" --out "$work/runs/$r" || return 1
  [ "$r" = dense ] && pack dense  # back even if the command is stopped later
  return 0
}
# pack [NAME...]: the small artifacts into OUT (see the header); model tars for NAME... only
pack() {
  $py - "$out" "$work" "$portable" "$@" <<'PY'
import io, json, os, sys, tarfile, time
from pathlib import Path
out, work, portable, names = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1", sys.argv[4:]
MAX_FILES, MAX_FILE, MAX_TOTAL = 8, 16 * 2**20 - 4096, 62 * 2**20
def files():
    return [p for p in out.iterdir() if p.is_file()]
def lalm_json(path):
    meta = json.loads(path.read_text())
    if portable:  # converted from the embedded default's GGUF: load with the default (fingerprint checked)
        meta["config"]["base"] = None
    return json.dumps(meta, indent=2).encode() + b"\n"
def add_bytes(tar, name, data):
    info = tarfile.TarInfo(name); info.size = len(data); info.mtime = int(time.time()); info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))
if not names:  # the run metadata, small
    with tarfile.open(out / "runs.tar.gz", "w:gz") as tar:
        for run in sorted((work / "runs").iterdir()):
            for rel in ("history.json", "loss.png"):
                if (run / rel).is_file():
                    tar.add(run / rel, f"runs/{run.name}/{rel}")
            if (run / "model" / "lalm.json").is_file():
                add_bytes(tar, f"runs/{run.name}/model/lalm.json", lalm_json(run / "model" / "lalm.json"))
        for d in ("train", "select"):
            if (work / d / "synth_config.json").is_file():
                tar.add(work / d / "synth_config.json", f"data/{d}/synth_config.json")
        if (work / "times.tsv").is_file():
            tar.add(work / "times.tsv", "times.tsv")
    print(f"pack: runs.tar.gz {(out / 'runs.tar.gz').stat().st_size / 1e6:.2f} MB")
for name in names:
    model = work / "runs" / name / "model"
    if not (model / "lalm.json").is_file():
        print(f"pack: {name}: no model"); continue
    if any(p.name.startswith(f"model_{name}.tar") for p in files()):
        continue
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for p in sorted(model.iterdir()):
            if p.name == "lalm.json":
                add_bytes(tar, f"{name}/model/lalm.json", lalm_json(p))
            elif p.is_file():
                tar.add(p, f"{name}/model/{p.name}")
    data = buf.getvalue()
    parts = [data[i:i + MAX_FILE] for i in range(0, len(data), MAX_FILE)]
    # keep room for job.log, select_qa.json, summary.json and runs.tar.gz (written last)
    have = [p for p in files() if p.name not in ("job.log", "select_qa.json", "summary.json", "runs.tar.gz")]
    n_files = len(have) + 4 + len(parts)
    total = sum(p.stat().st_size for p in have) + len(data) + 2 * 2**20
    if n_files > MAX_FILES or total > MAX_TOTAL:
        print(f"pack: {name}: {len(data) / 1e6:.1f} MB does not fit ({n_files} files, {total / 1e6:.0f} MB); left in {model}")
        continue
    if len(parts) == 1:
        (out / f"model_{name}.tar").write_bytes(data)
    else:
        for i, part in enumerate(parts):
            (out / f"model_{name}.tar.part{i:02d}").write_bytes(part)
    print(f"pack: model_{name}.tar {len(data) / 1e6:.1f} MB" + (f" in {len(parts)} parts" if len(parts) > 1 else ""))
PY
}
# the runs, PAR at a time (dense first: the others do not wait for it)
pids=()
for r in "${runs[@]}"; do
  throttle "$par"
  train_one "$r" &
  pids+=($!)
done
wait "${pids[@]}"
say "training done"

# ---- 6. scoring on the selection set ---------------------------------------------------------
cat > "$work/bench_qa.py" <<'PY'
"""`export.cli bench qa` with each LalmAnswerer (encoder + LLM) on DEVICE; argv: DEVICE BATCH ARGS..."""
import sys

dev, batch, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
import training.eval.lalm_answerer as la  # noqa: E402

_init = la.LalmAnswerer.__init__


def __init__(self, *a, **k):
    if batch > 0:
        k.setdefault("batch_size", batch)
    _init(self, *a, **k)
    self.model.to(dev)
    self.encoder.to(dev)  # lalm_cache.encoder_outputs runs where the encoder is
    collate = self.model.collate

    def on_device(examples, left_pad=False):
        return {key: v.to(dev) for key, v in collate(examples, left_pad).items()}

    self.model.collate = on_device


la.LalmAnswerer.__init__ = __init__
from export.cli import main  # noqa: E402

sys.exit(main(argv))
PY
models=()
for r in "${runs[@]}"; do [ -f "$work/runs/$r/model/lalm.json" ] && models+=("$r/model"); done
models+=(text-only chance)
mkdir -p "$work/score"; rm -f "$work/score"/*.json
score_left=$(( t0 + total - 20 - $(date +%s) )); [ $score_left -lt 30 ] && score_left=30
threads=$(( cores / (bench_par < ${#models[@]} ? bench_par : ${#models[@]}) )); [ $threads -lt 1 ] && threads=1
bench_batch=${BENCH_BATCH:-$([ $on_gpu = 1 ] && echo 32 || echo 0)}
say "scoring ${#models[@]} models on the selection set, $bench_par at once, $threads threads each, limit $score_left s"
score_one() {  # score_one INDEX MODEL
  local tag; tag=$(printf '%02d' "$1")
  (cd "$work/runs" && OMP_NUM_THREADS=$threads timeout "$score_left" $py "$work/bench_qa.py" "$device" "$bench_batch" \
     bench qa --data "$select_dir" --model "$2" --out "$work/score/$tag.json" --quiet > "$work/score/$tag.log" 2>&1) \
    || { say "score $2 failed: $(tail -n 3 "$work/score/$tag.log" | tr '\n' ' ')"; return 1; }
}
bench_one() { stage "score-${2%/model}" score_one "$1" "$2"; }
s_score=$(date +%s)
pids=()
for i in "${!models[@]}"; do
  throttle "$bench_par"
  bench_one "$i" "${models[$i]}" &
  pids+=($!)
done
wait "${pids[@]}"
printf '%s\t%s\t%s\n' scoring $(( $(date +%s) - s_score )) 0 >> "$times"
say "scoring: $(( $(date +%s) - s_score )) s"
$py - "$work" "$out" "$select_dir" <<'PY'
import json, sys
from pathlib import Path
from training.eval.bench import qa_table, save_metrics
work, out, select = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
allm = {}
for f in sorted((work / "score").glob("*.json")):
    allm.update(json.loads(f.read_text())["models"])
if allm:
    print(qa_table(allm))
    merged = dict(next(iter(allm.values())))
    merged["models"] = allm
    merged["data"] = select
    save_metrics(out / "select_qa.json", merged)
    print(f"metrics -> {out / 'select_qa.json'}")
else:
    print("no model was scored")
PY

# ---- 7. summary and artifacts ----------------------------------------------------------------
if [ -n "${PACK:-}" ]; then read -ra pack_order <<< "${PACK//text-only/noaudio}"
else pack_order=(dense "${runs[@]}"); fi
$py - "$work" "$out" "$steps" "$align_steps" "$batch" "$total" "$device" "$scenes" "$select_scenes" "$select_seed" \
  "$synth_seed" "${runs[@]}" <<'PY'
import json, sys
from pathlib import Path
work, out = Path(sys.argv[1]), Path(sys.argv[2])
steps, align_steps, batch, total = (int(x) for x in sys.argv[3:7])
device, scenes, select_scenes, select_seed, synth_seed = sys.argv[7:12]
runs = sys.argv[12:]
times = {}
for line in (work / "times.tsv").read_text().splitlines():
    name, sec, rc = line.split("\t")
    times[name] = {"seconds": int(sec), "rc": int(rc)}
sel = {}
if (out / "select_qa.json").is_file():
    sel = json.loads((out / "select_qa.json").read_text())["models"]
rows, summary = [], {"device": device, "total_seconds_budget": total, "scenes": int(scenes),
                     "synth_seed": int(synth_seed), "select_scenes": int(select_scenes),
                     "select_seed": int(select_seed), "sft_steps": steps, "align_steps": align_steps,
                     "batch": batch, "stages": times, "runs": {}}
def last(hist, key):
    v = [h[key] for h in hist if key in h]
    return v[-1] if v else None
names = []
for r in runs:
    if (work / "runs" / f"{r}-align").is_dir():
        names.append(f"{r}-align")
    names.append(r)
for name in names:
    run = work / "runs" / name
    hist = json.loads((run / "history.json").read_text()) if (run / "history.json").is_file() else []
    m = sel.get(f"lalm:{name}/model", {})
    st = "align" if name.endswith("-align") else "sft"
    t = times.get(f"train-{name}", {})
    rec = {"stage": st, "steps": align_steps if st == "align" else steps, "batch": batch,
           "seconds": t.get("seconds"), "ok": t.get("rc") == 0 and (run / "model" / "lalm.json").is_file(),
           "train_loss": last(hist, "loss"), "eval_loss": last(hist, "eval_loss"),
           "train_runtime_s": last(hist, "train_runtime"),
           "train_samples_per_s": last(hist, "train_samples_per_second"),
           **{k: m.get(k) for k in ("overall", "L1", "L2", "L3")}}
    summary["runs"][name] = rec
    rows.append(rec | {"name": name})
for b in ("text-only", "chance"):
    if b in sel:
        summary["runs"][b] = {k: sel[b].get(k) for k in ("overall", "L1", "L2", "L3")}
        rows.append({"name": b, **summary["runs"][b]})
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
f = lambda v, p=False: "-" if v is None else (f"{100 * v:.1f}%" if p else (f"{v:.3f}" if isinstance(v, float) else str(v)))
hdr = ["run", "stage", "steps", "batch", "sec", "samples/s", "train_loss", "eval_loss", "overall", "L1", "L2", "L3"]
table = [hdr] + [[r["name"], r.get("stage", "-"), f(r.get("steps")), f(r.get("batch")), f(r.get("seconds")),
                  f(r.get("train_samples_per_s")), f(r.get("train_loss")), f(r.get("eval_loss")),
                  *(f(r.get(k), True) for k in ("overall", "L1", "L2", "L3"))] for r in rows]
w = [max(len(row[i]) for row in table) for i in range(len(hdr))]
print("summary (selection set: %s scenes, seed %s):" % (select_scenes, select_seed))
for row in table:
    print("  " + "  ".join(c.ljust(w[i]) for i, c in enumerate(row)))
PY
pack "${pack_order[@]}"
pack
say "done: $(ls "$out" | tr '\n' ' ')"
