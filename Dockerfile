# syntax=docker/dockerfile:1
# Build: docker build --build-arg LAGWATCH_REVISION=$(git rev-parse --short=12 HEAD) -t lagwatch:0.1.0 .
# Run:   docker run -p 9464:9464 -v $PWD/lagwatch.yaml:/etc/lagwatch/config.yaml:ro lagwatch:0.1.0

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src

# 1. The dependencies, from the manifests alone: this layer is rebuilt only when Cargo.toml,
#    Cargo.lock, a package's manifest or the build script changes, not for a change of code.
#    scripts/docker-dependency-stubs writes empty stand-ins for the workspace's own sources
#    (tests/it/deploy_manifests.rs checks they stand in for every target).
COPY Cargo.toml Cargo.lock ./
COPY crates/lagwatch-core/Cargo.toml crates/lagwatch-core/build.rs crates/lagwatch-core/
COPY crates/lagwatch-emulator/Cargo.toml crates/lagwatch-emulator/
COPY scripts/docker-dependency-stubs scripts/
RUN scripts/docker-dependency-stubs \
 && cargo build --release --locked --no-default-features --bin lagwatch

# 2. lagwatch itself. The revision comes only now: it changes with every commit, and an ARG
#    used before the dependency build would invalidate that layer each time.
ARG LAGWATCH_REVISION=unknown
ENV LAGWATCH_REVISION=${LAGWATCH_REVISION}
COPY src ./src
COPY crates ./crates
COPY examples ./examples
COPY benches ./benches
# The runbooks are compiled in: lagwatch serves them at /docs/runbooks/.
COPY docs/runbooks ./docs/runbooks
# Cargo goes by file times, and the context's files keep theirs, which can be older than the
# stand-ins' build: touch them so that Cargo rebuilds the workspace's packages (and only them).
# Without the default `demo` feature: the image ships no emulator (no `demo`, `emulate`, or
# `simulated` kind).
RUN find src crates benches -name '*.rs' -exec touch {} + \
 && cargo build --release --locked --no-default-features --bin lagwatch \
 && strip target/release/lagwatch

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 lagwatch \
 && useradd --system --uid 10001 --gid lagwatch --no-create-home --shell /usr/sbin/nologin lagwatch
COPY --from=build /src/target/release/lagwatch /usr/local/bin/lagwatch
COPY examples /usr/share/lagwatch/examples
USER 10001:10001
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/lagwatch"]
CMD ["run", "--config", "/etc/lagwatch/config.yaml"]
