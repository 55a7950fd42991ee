# The control plane's image: the `tollgate` binary, statically linked (musl), on distroless
# `static` (no shell, no libc, no package manager), running as the non-root user 65532.
#   docker build -t tollgate:0.1.0 .
# The chart runs it read-only (readOnlyRootFilesystem, all capabilities dropped): the binary
# writes nothing but its logs to stdout. The filter's .wasm is not in this image; it ships as
# its own OCI artifact (scripts/wasm-oci.py).

ARG RUST_VERSION=1.90

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p tollgate-control-plane --bin tollgate \
      --target x86_64-unknown-linux-musl \
 && install -D -m 0555 target/x86_64-unknown-linux-musl/release/tollgate /out/tollgate

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tollgate /usr/local/bin/tollgate
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/tollgate"]
CMD ["serve"]
