# syntax=docker/dockerfile:1
#
# Portico: one image, one binary. Compose and Kubernetes pick the component with the
# command, e.g. `serve gateway` or `serve beta`.

# ---------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------
FROM rust:1.95-bookworm AS build

# - pkg-config + libssl-dev: libpq (built from source by pq-sys "bundled") links the
#   system OpenSSL, so the runtime stage needs libssl3.
# - cmake: aws-lc-sys (rustls' crypto) may build with it; gcc from the base image is
#   enough as its C compiler, so clang is not installed.
# - SQLite (libsqlite3-sys "bundled") only needs the C compiler.
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev cmake \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .

# The registry and target directory live in BuildKit cache mounts, so rebuilds only
# recompile what changed. A cache mount is not part of the image: the binary is copied
# out of target/ in the same step. `sharing=locked` serialises concurrent builds (compose
# builds the gateway and beta services from this file) instead of letting them race.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p portico \
 && install -D -m 0755 target/release/portico /out/portico

# ---------------------------------------------------------------------------
# Runtime
# ---------------------------------------------------------------------------
FROM debian:bookworm-slim

# ca-certificates: outgoing TLS. libssl3: dynamically linked by libpq (see above).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 portico \
 && useradd --system --uid 10001 --gid portico --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin portico \
 && mkdir /data \
 && chown portico:portico /data

COPY --from=build /out/portico /usr/local/bin/portico

# Inside a container the loopback defaults would be unreachable; listen on every
# interface. PORTICO_DATA_DIR holds SQLite files (dev), and later mail and media.
ENV PORTICO_DATA_DIR=/data \
    PORTICO_HTTP_ADDR=0.0.0.0:8080 \
    PORTICO_BETA_GRPC_ADDR=0.0.0.0:50051

# Numeric user so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]

# 8080: gateway HTTP; 9090: the gateway's operators' listener; 9464: a service's metrics
# (PORTICO_METRICS_ADDR); 50051-50055: beta, media, workflow, billing, monitoring gRPC.
EXPOSE 8080 9090 9464 50051 50052 50053 50054 50055

# No HEALTHCHECK: the image carries no HTTP client. Compose probes the gateway with
# bash's /dev/tcp instead (see docker-compose.yml).

# Exec form: portico is PID 1 and receives SIGTERM itself for a graceful drain.
ENTRYPOINT ["/usr/local/bin/portico"]
CMD ["--help"]
