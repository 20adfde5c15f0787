# One image for every role: `scatter leaf`, `scatter root`, `scatter index ...`, `scatter up`.
#
#   docker build -t scatter:latest .                       # compiles the release binary (needs
#                                                          # the rust and debian images)
#   docker run --rm -p 8080:8080 scatter:latest up --listen 0.0.0.0:8080
#   docker compose up                                      # two leaf nodes and a root
#
# Without a registry (CI, air-gapped hosts), `.ci/container-image.sh` builds the base from
# Debian's packages (`docker import`) and uses the `prebuilt` stage with a binary built on
# the host:
#   docker build --build-arg BASE=scatter-base:bookworm --target prebuilt -t scatter:latest .
#
# The image runs as uid 10001 (numeric: the base needs no user database) with its data in
# /data; the bundled corpus and its schema are in /usr/share/scatter.

ARG BASE=debian:bookworm-slim

# --- prebuilt: the binary from target/docker/scatter (built outside) -----------------------
FROM ${BASE} AS prebuilt
COPY --chown=10001:10001 deploy/docker/rootfs/ /
COPY data/debian-sample.jsonl.gz data/debian-schema.toml /usr/share/scatter/
COPY target/docker/scatter /usr/local/bin/scatter
USER 10001:10001
WORKDIR /data
# 8080: root HTTP API; 7070: leaf gRPC (+ gRPC health); 9090: leaf /metrics.
EXPOSE 8080 7070 9090
ENTRYPOINT ["/usr/local/bin/scatter"]
CMD ["--help"]

# --- build stage: the release binary ------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin scatter \
 && cp target/release/scatter /usr/local/bin/scatter \
 && strip /usr/local/bin/scatter

# --- runtime (the default target): the binary and nothing it does not need ----------------
FROM ${BASE}
COPY --chown=10001:10001 deploy/docker/rootfs/ /
COPY data/debian-sample.jsonl.gz data/debian-schema.toml /usr/share/scatter/
COPY --from=build /usr/local/bin/scatter /usr/local/bin/scatter
USER 10001:10001
WORKDIR /data
EXPOSE 8080 7070 9090
ENTRYPOINT ["/usr/local/bin/scatter"]
CMD ["--help"]
