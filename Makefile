# chihaya-rs developer targets. Every cargo call honours CARGO_TARGET_DIR.
#
#   make build     release build of chihaya, cc and bencode
#   make test      find or start MariaDB (scripts/ensure-db.sh), install the
#                  BitTorrent clients, systemd's tools and strace of the tests
#                  (scripts/ensure-clients.sh), prometheus
#                  (scripts/ensure-prometheus.sh) and haproxy
#                  (scripts/ensure-haproxy.sh), then cargo test
#   make run       build, demo database `chihaya` with the fixtures, run the tracker
#   make db-stop   stop the private mariadbd that ensure-db may have started
#   make bench     benchmark on 127.0.0.1 (bench/README.md); make bench-reload
#   make bench-hostile  what a hostile member can do (bench/README.md)
#   make bench-push  push API: push to next announce, announces under pushes
#                  (1,000,000 torrents by default; bench/README.md)
#   make bench-scale  announces direct, through HAProxy to one tracker, and to
#                  two trackers sharded by info_hash (bench/README.md)
#   make bench-db  MariaDB's CPU per row of each accounting statement (bench/README.md)
#   make fmt       check formatting        make lint   clippy, warnings are errors
#   make docker    build the chihaya-rs image
#   make clean     cargo clean

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

CARGO ?= cargo
# Extra arguments for cargo test, e.g. make test TEST_ARGS='announce -- --nocapture'
TEST_ARGS ?=

ifdef CARGO_TARGET_DIR
export CARGO_TARGET_DIR
endif

# The demo request printed by `make run`: user 1, torrent 3, an approved client.
DEMO_PASSKEY := mUztWMpBYNCqzmge6vGeEUGSrctJbgpQ
DEMO_INFO_HASH := 59FC5431B11C761C94CD3EB90825EA6E6DC8A5F1
DEMO_PEER_ID := -TR2940-abcdefghijkl
DEMO_TRACKER := http://127.0.0.1:34000

.PHONY: build test run bench bench-reload bench-hostile bench-push bench-scale bench-db docker db-stop fmt lint clean

build:
	$(CARGO) build --release --bins

# One shell line, so that the URL printed by ensure-db reaches cargo.
test:
	@scripts/ensure-clients.sh
	@scripts/ensure-prometheus.sh
	@scripts/ensure-haproxy.sh
	@out=$$(scripts/ensure-db.sh); url=$${out#DATABASE_URL=}; \
	echo "DATABASE_URL=$$url $(CARGO) test --all-targets $(TEST_ARGS)"; \
	DATABASE_URL="$$url" $(CARGO) test --all-targets $(TEST_ARGS)

run:
	$(CARGO) build --release --bins
	@out=$$(scripts/ensure-db.sh); \
	dsn=$$(scripts/ensure-demo-db.sh "$${out#DATABASE_URL=}"); \
	bin=$${CARGO_TARGET_DIR:-target}/release; \
	hash=$$(printf '%s' '$(DEMO_INFO_HASH)' | sed 's/../%&/g'); \
	url="$(DEMO_TRACKER)/$(DEMO_PASSKEY)/announce?info_hash=$$hash&peer_id=$(DEMO_PEER_ID)&port=51413&uploaded=0&downloaded=0&left=0&compact=1"; \
	echo; \
	echo "Example announce (demo user 1, torrent 3):"; \
	echo "  $$url"; \
	echo "Try it from another shell:"; \
	echo "  curl -s '$$url' | $$bin/bencode -d"; \
	echo; \
	echo "DB_DSN=$$dsn $$bin/chihaya --config config.example.json"; \
	exec env DB_DSN="$$dsn" "$$bin/chihaya" --config config.example.json

# Benchmark harness (bench/README.md): release build, dataset `chihaya_bench`,
# tracker + wrk on 127.0.0.1, summary; BENCH_* variables tune it. bench-reload
# is the reload-under-load scenario (the same as make bench BENCH_RELOAD=1).
bench:
	CARGO='$(CARGO)' bench/run.sh

bench-reload:
	CARGO='$(CARGO)' BENCH_RELOAD=1 bench/run.sh

# Hostile-member scenarios (bench/README.md), each against a fresh tracker;
# BENCH_BINARY=/path/to/chihaya runs them against another build, unbuilt.
bench-hostile:
	CARGO='$(CARGO)' bench/hostile.sh

# Push API (bench/README.md): one tracker with push_token set on the bench
# dataset (BENCH_TORRENTS, default 1000000, loaded only when missing); the time
# from a push to the announce that sees it, and announces under pushes vs alone.
bench-push:
	CARGO='$(CARGO)' bench/push.sh

# Scaling out (bench/README.md): one tracker direct, then HAProxy
# (contrib/haproxy/chihaya.cfg, addresses rewritten) in front of it, then in front
# of two trackers "a" and "b"; announces/s, latency and CPU per announce of each.
bench-scale:
	CARGO='$(CARGO)' bench/scale.sh

# Statement shape and size (bench/README.md): examples/bench_db against the
# database chihaya_benchdb (recreated, dropped at the end unless BENCH_KEEP=1).
bench-db:
	CARGO='$(CARGO)' bench/db.sh

docker:
	docker build -t chihaya-rs .

db-stop:
	@scripts/ensure-db.sh --stop

fmt:
	$(CARGO) fmt --check

lint:
	$(CARGO) clippy --all-targets -- -D warnings

clean:
	$(CARGO) clean
