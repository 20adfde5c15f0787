# syntax=docker/dockerfile:1
# One image for every role: `scatter leaf`, `scatter root`, `scatter index ...`, `scatter up`.
# Build:  docker build -t scatter:latest .
# Run:    docker run --rm -p 8080:8080 scatter:latest up --listen 0.0.0.0:8080

# --- build stage: the release binary -------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts (BuildKit) keep the registry and the build directory between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin scatter \
 && cp target/release/scatter /usr/local/bin/scatter \
 && strip /usr/local/bin/scatter

# --- runtime stage: the binary and nothing else it does not need -------------------------
FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /data --create-home scatter
COPY --from=build /usr/local/bin/scatter /usr/local/bin/scatter
USER scatter
WORKDIR /data
# 8080: root HTTP API; 7070: leaf gRPC (+ gRPC health); 9090: leaf /metrics.
EXPOSE 8080 7070 9090
ENTRYPOINT ["/usr/local/bin/scatter"]
CMD ["--help"]
