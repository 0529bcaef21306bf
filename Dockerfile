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
# No curl in the slim image: node's fetch asks /healthz on the port of RAFTLOCK_HTTP_LISTEN.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "const a = process.env.RAFTLOCK_HTTP_LISTEN || ':8381'; fetch('http://127.0.0.1:' + a.slice(a.lastIndexOf(':') + 1) + '/healthz', { signal: AbortSignal.timeout(2000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "/app/dist/cli.js"]
CMD ["start", "--help"]
