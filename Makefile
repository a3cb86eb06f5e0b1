# The two commands a newcomer needs (see README.md):
#   make run    builds the plugins and the host, and starts `tally serve` with the
#               bank-account plugin on 127.0.0.1:7070, data in ./tally-data
#   make test   runs every check and test (CI runs exactly this), the API fuzzing last
# Each sets up what it needs on a fresh machine.

CARGO ?= cargo
PLUGINS := --manifest-path plugins/Cargo.toml

.PHONY: run demo test setup test-setup plugins rust-plugins language-plugins test-language-plugins

setup:
	rustup target add wasm32-wasip2

# What the tests need beyond `setup`: PostgreSQL from Debian's packages, only when
# missing (the PostgreSQL store's tests start a server of their own from its binaries,
# /usr/lib/postgresql/*/bin).
test-setup: setup
	@if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then \
		echo "setup: installing postgresql with apt-get"; \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$sudo apt-get update -qq && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			postgresql >/dev/null; \
	fi

run: rust-plugins
	mkdir -p target/tally-plugins
	cp plugins/target/wasm32-wasip2/release/bank_account.wasm target/tally-plugins/
	$(CARGO) run --release --locked -p tally-server -- serve --plugins target/tally-plugins

# The README's tour, run by itself in a temporary directory.
demo: rust-plugins
	$(CARGO) run --release --locked -p tally-server -- demo

# Every reference plugin: the Rust ones, then bank-account in Python and JavaScript.
plugins: rust-plugins language-plugins

# The Rust plugin components (plugins/target/wasm32-wasip2/release/*.wasm): what the
# service, the demo and the benchmark load.
rust-plugins: setup
	$(CARGO) build --release --target wasm32-wasip2 $(PLUGINS)

# The Python and JavaScript reference plugins (plugins/target/python, plugins/target/js),
# each script installing its pinned tools from PyPI or npm when they are missing.
language-plugins:
	plugins/python/build.sh
	plugins/js/build.sh

# The Python and JavaScript SDKs' and plugins' own tests (pytest, node --test), the
# bank-account conformance suite against each language's component, then a plugin
# generated in each language (`tally plugin new --lang`) tested, built and checked.
test-language-plugins: language-plugins
	plugins/python/test.sh
	plugins/js/test.sh
	$(CARGO) run --locked -q -p tally-server -- plugin test plugins/target/python/bank_account.wasm
	$(CARGO) run --locked -q -p tally-server -- plugin test plugins/target/js/bank_account.wasm
	CARGO=$(CARGO) tests/scaffold/languages.sh

test: test-setup
	$(CARGO) fmt --all -- --check
	cd plugins && $(CARGO) fmt -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) clippy $(PLUGINS) --all-targets --locked -- -D warnings
	$(CARGO) clippy $(PLUGINS) --target wasm32-wasip2 --locked -- -D warnings
	$(CARGO) test --workspace --locked
	$(CARGO) test $(PLUGINS) --locked
	$(MAKE) test-language-plugins
	CARGO=$(CARGO) tests/api-fuzz/schemathesis.sh
