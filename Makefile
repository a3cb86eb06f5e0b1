# The two commands a newcomer needs (see README.md):
#   make demo   runs Tally's main job
#   make test   runs every check and test (CI runs exactly this)
# Each sets up what it needs on a fresh machine.

CARGO ?= cargo
PLUGINS := --manifest-path plugins/Cargo.toml

.PHONY: demo test setup plugins

setup:
	rustup target add wasm32-wasip2

demo: setup
	$(CARGO) run --release -p tally-wal --example wal_bench -- --quick
	$(CARGO) run --release -p tally-store --example store_bench -- --quick

# The plugin components (plugins/target/wasm32-wasip2/release/*.wasm).
plugins: setup
	$(CARGO) build --release --target wasm32-wasip2 $(PLUGINS)

test: setup
	$(CARGO) fmt --all -- --check
	cd plugins && $(CARGO) fmt -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) clippy $(PLUGINS) --all-targets --locked -- -D warnings
	$(CARGO) clippy $(PLUGINS) --target wasm32-wasip2 --locked -- -D warnings
	$(CARGO) test --workspace --locked
	$(CARGO) test $(PLUGINS) --locked
