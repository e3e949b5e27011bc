# Kith node: agent + gateway in one process.
# Build: docker build -t kith .   Run: see docker-compose.yml.

# Stage 1: install dependencies (better-sqlite3 builds a native addon here).
FROM node:20-bookworm-slim AS deps
WORKDIR /app
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-audit --no-fund

# Stage 2: the runtime image, no compiler, runs as an unprivileged user.
FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    KITH_DATA_DIR=/data \
    KITH_SMTP_HOST=0.0.0.0 \
    KITH_IMAP_HOST=0.0.0.0 \
    KITH_HTTP_HOST=0.0.0.0
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data kith \
 && mkdir -p /data && chown kith /data
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY agent ./agent
COPY gateway ./gateway
COPY config ./config
COPY common ./common
COPY store ./store
COPY cli ./cli
# The `kith` command runs a bundle of the sources (bin/build.mjs); /app is not writable at run time.
RUN node bin/build.mjs
USER kith
VOLUME ["/data"]
# 4410: P2P links (public). 2587 SMTP submission, 2143 IMAP, 2080 autoconfig: publish on 127.0.0.1 only.
EXPOSE 4410 2587 2143 2080
ENTRYPOINT ["/usr/bin/tini", "--", "node", "bin/kith.mjs"]
CMD ["start"]
