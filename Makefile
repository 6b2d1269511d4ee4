# CodeBeaker: the two commands are `make run` and `make test`.
SHELL := /bin/bash
AGENT_TARGET := x86_64-unknown-linux-gnu
BUNDLE := target/agent-bundle
CARGO ?= cargo

.PHONY: run test test-variants agent images bench check fmt clippy pytools

## Optional package variants to build with the images (docker/variants/), e.g.
## `make images VARIANTS="python-data javascript-libs"`. None by default: `make run` stays fast.
VARIANTS ?=

## Start the gateway on 127.0.0.1:8080, building the agent and any missing runtime image.
## On first run it creates a development API key in codebeaker-keys.toml and prints it.
run: agent images
	$(CARGO) build --release --bin codebeaker
	@./target/release/codebeaker keys create --name dev --tenant dev --scopes execute,sessions,admin --if-none
	./target/release/codebeaker serve

## Run every test (unit + integration against the real Docker engine).
## The small javascript-libs variant (~9 MB over the JavaScript image) is the fixture of the
## package-selection tests; the 400 MB python-data variant is left to `make test-variants`.
test: agent images pytools
	./docker/build-variants.sh javascript-libs
	$(CARGO) test --workspace --no-fail-fast -- --test-threads 1

## Builds both package variants and runs the tests that need them (the ignored ones too).
test-variants: agent images
	./docker/build-variants.sh python-data javascript-libs
	$(CARGO) test --test api variants -- --test-threads 1 --include-ignored

## kubernetes-validate (PyPI) in target/py, for the Helm chart's offline validation.
pytools:
	@target/py/bin/python -c 'import kubernetes_validate' 2>/dev/null || \
	  { python3 -m venv target/py && target/py/bin/pip install -q kubernetes-validate; }

## The in-container agent: a static binary (glibc, crt-static), mounted read-only into every
## container at /opt/codebeaker. The languages' recipes, runners and templates come from
## languages/, mounted beside it at /opt/codebeaker-languages; a copy (without the image
## recipes) goes into the bundle for deployments, whose gateway reads <bundle>/languages.
agent:
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --profile agent -p codebeaker-agent --target $(AGENT_TARGET)
	rm -rf $(BUNDLE).new && mkdir -p $(BUNDLE).new
	cp target/$(AGENT_TARGET)/agent/codebeaker-agent $(BUNDLE).new/
	cp -r languages $(BUNDLE).new/languages && rm -rf $(BUNDLE).new/languages/*/image
	chmod -R a+rX $(BUNDLE).new
	rm -rf $(BUNDLE) && mv $(BUNDLE).new $(BUNDLE)

## Runtime images, one per languages/<name>/image/, built offline from Debian packages
## (skipped when up to date; missing ones in parallel).
images:
	./docker/build-images.sh
	$(if $(strip $(VARIANTS)),./docker/build-variants.sh $(VARIANTS))

## Load test: starts the gateway, warms it, runs k6 per language at concurrency 1 and 16.
bench: agent images
	./loadtest/bench.sh

check: fmt clippy

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings
