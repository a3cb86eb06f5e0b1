# The two commands a newcomer needs (see README.md):
#   make demo   runs Tally's main job
#   make test   runs every check and test (CI runs exactly this)
# Each sets up what it needs on a fresh machine.

CARGO ?= cargo

.PHONY: demo test setup

setup:
	rustup target add wasm32-wasip2

demo: setup
	$(CARGO) run --release -p tally-wal --example wal_bench -- --quick

test: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) test --workspace --locked
