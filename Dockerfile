# syntax=docker/dockerfile:1
# The raftlock node image. Build and push it yourself (no registry ships it):
#   docker build -t <registry>/raftlock:0.1.0 . && docker push <registry>/raftlock:0.1.0
# Run: docker run <image> start --id n1 --peers n1=host1:7001,... (flags as in `raftlock start --help`).

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# `raftlock` on the PATH, so that `kubectl exec <pod> -c raftlock -- raftlock members list` works.
RUN chmod +x dist/cli.js && ln -s /app/dist/cli.js /usr/local/bin/raftlock \
  && mkdir /data && chown 1000:1000 /data
# Defaults for `raftlock start`; flags given to the container win over them.
ENV RAFTLOCK_DATA_DIR=/data \
    RAFTLOCK_PEER_LISTEN=0.0.0.0:7001 \
    RAFTLOCK_HTTP_LISTEN=0.0.0.0:8381 \
    RAFTLOCK_RESP_LISTEN=0.0.0.0:6381
VOLUME /data
EXPOSE 7001 8381 6381
# The image's `node` user, by number so that Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
# SIGTERM: the node stops taking requests, hands leadership over if it leads, flushes and exits 0.
STOPSIGNAL SIGTERM
# No curl in the slim image: node asks /healthz on the port of RAFTLOCK_HTTP_LISTEN, over HTTPS when client
# TLS comes from RAFTLOCK_CLIENT_TLS_* (the certificate is not checked: this asks whether the local process
# answers; with RAFTLOCK_CLIENT_TLS_CA it presents the node's own certificate, as clients must).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "const e = process.env; const a = e.RAFTLOCK_HTTP_LISTEN || ':8381'; const tls = e.RAFTLOCK_CLIENT_TLS_CERT !== undefined; const id = tls && e.RAFTLOCK_CLIENT_TLS_CA !== undefined ? { cert: require('fs').readFileSync(e.RAFTLOCK_CLIENT_TLS_CERT), key: require('fs').readFileSync(e.RAFTLOCK_CLIENT_TLS_KEY) } : {}; require(tls ? 'https' : 'http').get({ host: '127.0.0.1', port: a.slice(a.lastIndexOf(':') + 1), path: '/healthz', timeout: 2000, rejectUnauthorized: false, ...id }, (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on('error', () => process.exit(1)).on('timeout', () => process.exit(1))"]
ENTRYPOINT ["node", "/app/dist/cli.js"]
CMD ["start", "--help"]
