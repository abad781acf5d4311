#!/bin/bash
# Stage 1 on a GPU machine without internet, in one timed command (docs/encoder.md):
# synthesize fresh training scenes from a synthesis kit, cache features on all cores,
# fine-tune the encoder on the GPU until the time budget is spent, tune the decoding;
# the run folder (best.pt, history.json, loss.png) and job.log land in OUT_DIR. The
# history's first validation row scores the init on the same clips (the bar to clear).
#
#   bash training/recipes/gpu_encoder.sh OUT_DIR [SCENES] [TOTAL_SECONDS] [DEVICE]
#
# Run from the repository root with the kit in .kit (`binaura synth-kit --out .kit`)
# and, where the machine lacks them, wheels of soundfile, cffi, pycparser,
# pyroomacoustics and h5py in .whl; a SYNTH_CONFIG that draws real recordings or measured
# heads (train_mix.json) also needs every part of .gpu-assets (`make gpu-kit`: the kit's
# train side and the training heads, training/recipes/gpu_assets.py), carried in as many
# calls. The same command runs on a CPU (DEVICE=cpu) for a check.
# Environment: INIT, SYNTH_SEED, SYNTH_CONFIG (a SynthConfig JSON), TRACKS (output tracks per
# class, default 1; e.g. TRACKS=2 with SYNTH_CONFIG=training/recipes/train_same_class.json,
# docs/encoder.md "Several tracks per class"), LR, BATCH, EVAL_EVERY,
# W_POLAR, W_DISTANCE, SELECT_BY (seld | floors | val_loss), RESERVE_S, WORK, and TRAIN_ARGS:
# more `binaura train encoder` flags, e.g. "--freeze spatial --w-keep 2 --keep-on familiar"
# (the design of stage 18b, docs/encoder-history.md).
set -uo pipefail
t0=$(date +%s)
out=${1:?usage: gpu_encoder.sh OUT_DIR [SCENES] [TOTAL_SECONDS] [DEVICE]}
scenes=${2:-15000}  # an H100 machine: ~100 s of synthesis, ~26 s of features
total=${3:-300}
device=${4:-cuda}
init=${INIT:-training/assets/encoder_small.pt}
work=${WORK:-/tmp/binaura-gpu}
mkdir -p "$out" "$work"
log="$out/job.log"
exec > >(tee -a "$log") 2>&1
say() { echo "[$(( $(date +%s) - t0 )) s] $*"; }

export PYTHONPATH="$PWD"
if ls .gpu-assets/p*/assets.tar.part >/dev/null 2>&1; then  # kit, heads, wheels (make gpu-kit); stdlib only
  assets=$(python3 -m training.recipes.gpu_assets unpack --parts .gpu-assets --to "$work/assets") \
    || { say "GPU assets did not unpack"; exit 3; }
  eval "$assets" || { say "GPU assets: bad environment"; exit 3; }
  say "from .gpu-assets: ${BINAURA_REAL_SOUNDS:-no real sounds}, ${BINAURA_HEADS:-no heads}, ${BINAURA_GPU_WHEELS:-no wheels}"
fi
shopt -s nullglob; wheels=(.whl/*.whl); [ -n "${BINAURA_GPU_WHEELS:-}" ] && wheels+=("$BINAURA_GPU_WHEELS"/*.whl); shopt -u nullglob
if [ ${#wheels[@]} -gt 0 ]; then  # .whl carried as is, or split inside .gpu-assets (not both)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$work/site" "${wheels[@]}" \
    || { say "wheel install failed"; exit 3; }
  export PYTHONPATH="$work/site:$PWD"
fi
export BINAURA_SYNTH_KIT="$PWD/.kit" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true
python3 -c "import sys, numpy, torch; print(sys.version.split()[0], 'numpy', numpy.__version__, 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"

config=()
if [ -n "${SYNTH_CONFIG:-}" ]; then config=(--config "$SYNTH_CONFIG"); fi  # e.g. training/recipes/train_reverb75.json
if ! python3 -c "import pyroomacoustics" 2>/dev/null; then
  say "pyroomacoustics does not import here: anechoic scenes only"
  echo '{"p_reverberant": 0.0}' > "$work/anechoic.json"
  config=(--config "$work/anechoic.json")
fi
rm -rf "$work/data" "$out/run"
say "synthesizing $scenes scenes"
OMP_NUM_THREADS=1 python3 -m export.cli synth --preset train --scenes "$scenes" --seed "${SYNTH_SEED:-2}" \
  --out "$work/data" --no-qa --quiet "${config[@]}" || { say "synthesis failed"; exit 4; }
say "features"
OMP_NUM_THREADS=1 python3 -c "
import dataclasses
from training.models.config import BUILDERS
from training.recipes.encoder_data import build_cache, default_cache_dir
cfg = dataclasses.replace(BUILDERS['small'](), tracks=${TRACKS:-1})
build_cache('$work/data', default_cache_dir('$work/data', cfg), cfg, progress=False)
" || { say "feature cache failed"; exit 5; }
rm -rf "$work/data/audio"  # the cache holds all training reads; frees the disk for larger runs
left=$(( total - ($(date +%s) - t0) - ${RESERVE_S:-45} ))
[ "$left" -lt 60 ] && left=60
say "training for $left s"
# the run folder lies in OUT_DIR, so a command stopped at its limit still leaves best.pt there
python3 -m export.cli train encoder --data "$work/data" --out "$out/run" --init "$init" --device "$device" \
  --batch-size "${BATCH:-256}" --lr "${LR:-5e-4}" --warmup-steps 100 --steps 200000 --eval-every "${EVAL_EVERY:-600}" \
  --no-polar-heads sphere --w-polar "${W_POLAR:-1.0}" --w-distance "${W_DISTANCE:-0.1}" \
  --tracks "${TRACKS:-1}" --select-by "${SELECT_BY:-seld}" --time-budget-min "$(python3 -c "print($left / 60)")" \
  ${TRAIN_ARGS:-} --quiet || say "training failed"
say "done"
