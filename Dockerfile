# syntax=docker/dockerfile:1
# Build: docker build --build-arg LAGWATCH_REVISION=$(git rev-parse --short=12 HEAD) -t lagwatch .
# Run:   docker run -p 9464:9464 -v $PWD/lagwatch.yaml:/etc/lagwatch/config.yaml:ro lagwatch

FROM rust:1.95-slim-bookworm AS build
ARG LAGWATCH_REVISION=unknown
ENV LAGWATCH_REVISION=${LAGWATCH_REVISION}
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY crates ./crates
COPY examples ./examples
COPY benches ./benches
# Without the default `demo` feature: the image ships no emulator (no `demo`, `emulate`, or
# `simulated` kind).
RUN cargo build --release --locked --no-default-features --bin lagwatch \
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
