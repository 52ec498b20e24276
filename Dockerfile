# syntax=docker/dockerfile:1
# The pg-reflinker image: one program for every role (controller, node, standalone, cleanup).
#   docker build -t ghcr.io/pg-reflinker/pg-reflinker:0.1.0 .
ARG NODE_IMAGE=node:22-bookworm-slim

# ---- build: compile TypeScript, then keep only the production dependencies ----
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY proto ./proto
COPY src ./src
RUN npm run build \
 && npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force

# ---- runtime ----
FROM ${NODE_IMAGE} AS runtime
# mount/umount for the node plugin's bind mounts; xfsprogs for XFS reflink tooling (xfs_io).
RUN apt-get update \
 && apt-get install -y --no-install-recommends util-linux mount xfsprogs \
 && rm -rf /var/lib/apt/lists/*
# Non-root by default (the controller runs so). The node plugin and the cleanup Jobs ask for
# root explicitly in their pod specs; they need it to mount and to remove volume directories.
RUN groupadd --system --gid 10001 pg-reflinker \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin pg-reflinker
WORKDIR /app
# Layout the program expects: dist/src/main.js, ../../package.json (version), ../../../proto.
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY --from=build /src/proto ./proto
ENV NODE_ENV=production
LABEL org.opencontainers.image.title="pg-reflinker" \
      org.opencontainers.image.description="CSI driver pg-reflinker.csi: database-consistent reflink clones of CloudNativePG volumes" \
      org.opencontainers.image.licenses="Apache-2.0"
USER 10001:10001
ENTRYPOINT ["node", "/app/dist/src/main.js"]
