# Multi-stage build: compile with the full toolchain, run on a small image as a non-root user.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin hookline

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /nonexistent --shell /usr/sbin/nologin hookline
COPY --from=build /src/target/release/hookline /usr/local/bin/hookline
COPY config/production.example.toml /etc/hookline/hookline.toml
USER hookline
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/hookline", "serve", "--config", "/etc/hookline/hookline.toml"]
