# syntax=docker/dockerfile:1
# chihaya-rs image: the tracker plus the cc and bencode tools.
#
#   docker build -t chihaya-rs .
#   docker run -p 34000:34000 -e DB_DSN='user:pass@tcp(db:3306)/chihaya' \
#     -v /srv/chihaya/config.json:/etc/chihaya/config.json:ro \
#     -v chihaya-state:/var/lib/chihaya --stop-timeout 70 chihaya-rs
#
# The working directory /var/lib/chihaya holds the peer cache, the journal, the spill file
# and events/, so mount a volume there to keep them across containers. On
# SIGTERM the tracker drains for up to --drain-timeout (60 s by default), which
# is longer than docker stop's default 10 s grace, hence --stop-timeout.

# ---- build ----
FROM rust:1-bookworm AS builder
WORKDIR /src
ENV CARGO_TARGET_DIR=/src/target

# Dependencies first, against stub sources: this layer is rebuilt only when
# Cargo.toml or Cargo.lock change. Every target path named in Cargo.toml gets
# a stub so that cargo accepts the manifest.
COPY Cargo.toml Cargo.lock* ./
RUN set -eu; \
    mkdir -p src; : > src/lib.rs; \
    for p in $(sed -n 's/^[[:space:]]*path[[:space:]]*=[[:space:]]*"\([^"]*\.rs\)".*/\1/p' Cargo.toml); do \
        mkdir -p "$(dirname "$p")"; \
        [ -e "$p" ] || echo 'fn main() {}' > "$p"; \
    done; \
    cargo build --release --bins

COPY src ./src
COPY cmd ./cmd
# COPY keeps the files' times, which may be older than the stub build: touch
# them so cargo rebuilds the crate itself.
RUN find src cmd -name '*.rs' -exec touch {} + \
 && cargo build --release --bins

# ---- run ----
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 chihaya \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/chihaya \
        --no-create-home --shell /usr/sbin/nologin chihaya \
 && install -d -o 10001 -g 10001 -m 0755 /var/lib/chihaya \
 && install -d -m 0755 /etc/chihaya

COPY --from=builder /src/target/release/chihaya /src/target/release/cc /src/target/release/bencode /usr/local/bin/
# Defaults only; mount the real config over it (DB_DSN overrides its database
# settings).
COPY config.example.json /etc/chihaya/config.json

USER 10001:10001
WORKDIR /var/lib/chihaya
EXPOSE 34000
STOPSIGNAL SIGTERM
ENTRYPOINT ["chihaya", "--config", "/etc/chihaya/config.json"]
