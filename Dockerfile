# Dockerfile: Tollgate's two images, one target each (docs/operations.md, "Container images"):
#   control  tollgate-control, the dashboard (/opt/tollgate/web), the migrations compiled in
#   data     tollgate-data
# scripts/images builds both (docker build --target control|data ...). Built on Debian 12, run on
# Debian 12 slim with only the libraries the binaries load. Both run as UID/GID 10001 with no shell
# at run time; the root filesystem can be read-only: the data plane writes only its state dir
# /var/lib/tollgate, the control plane nothing. tests/integration/image_contract.test.mjs checks
# this file against the binaries (their libraries and Debian's packages for them).

# ---- build: Release, no sanitizers, the same -Werror build scripts/run makes ----
FROM debian:12 AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      libuv1-dev libcurl4-openssl-dev libjansson-dev libssl-dev node-llhttp \
      libmicrohttpd-dev libjwt-dev libargon2-dev libpq-dev \
      nodejs npm ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# uPlot for the dashboard's charts comes from package-lock.json, as in scripts/run
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DTG_SANITIZE=OFF -DTG_FUZZ=OFF -DTG_WERROR=ON \
 && cmake --build /build -j"$(nproc)" --target tollgate-control tollgate-data web \
 && install -d /out/bin \
 && install -m 0755 /build/bin/tollgate-control /build/bin/tollgate-data /out/bin/ \
 && cp -R /build/web /out/web

# ---- what both images share: Debian 12 slim and the user 10001 (no home, no login shell) ----
FROM debian:12-slim AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=unknown
ARG LICENSES=NOASSERTION
RUN groupadd --gid 10001 tollgate \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin --no-log-init tollgate
LABEL org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="${LICENSES}" \
      org.opencontainers.image.vendor="Tollgate"
STOPSIGNAL SIGTERM

# ---- control: the admin API and dashboard on 8081 ----
FROM runtime AS control
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libjansson4 libssl3 libmicrohttpd12 libpq5 libjwt0 libargon2-1 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/bin/tollgate-control /opt/tollgate/bin/tollgate-control
COPY --from=build /out/web /opt/tollgate/web
LABEL org.opencontainers.image.title="tollgate-control" \
      org.opencontainers.image.description="Tollgate control plane: admin API, dashboard, migrations"
ENV TOLLGATE_CONTROL_LISTEN=0.0.0.0:8081
EXPOSE 8081
USER 10001:10001
ENTRYPOINT ["/opt/tollgate/bin/tollgate-control"]

# ---- data: the gateway on 8080; its state dir is the only writable path ----
FROM runtime AS data
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libjansson4 libssl3 libuv1 libcurl4 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/tollgate
COPY --from=build /out/bin/tollgate-data /opt/tollgate/bin/tollgate-data
LABEL org.opencontainers.image.title="tollgate-data" \
      org.opencontainers.image.description="Tollgate data plane: the OpenAI-compatible LLM gateway"
ENV TOLLGATE_DATA_LISTEN=0.0.0.0:8080 \
    TOLLGATE_STATE_DIR=/var/lib/tollgate
EXPOSE 8080
USER 10001:10001
ENTRYPOINT ["/opt/tollgate/bin/tollgate-data"]
