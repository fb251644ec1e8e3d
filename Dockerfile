# The custom-images service as a container image.
#
#   docker build -t custom-images .
#   docker run --read-only -v custom-images-data:/data -p 10101:10101 \
#     -e JUPYTERHUB_API_URL=... -e JUPYTERHUB_API_TOKEN=... custom-images
#
# Runs as uid 10001 (numeric, so that Kubernetes' runAsNonRoot can verify it) on a
# read-only root filesystem: SQLite's data and the temporary files of builds and uploads
# (/data/work), and nothing else, are written under /data.
# BASE_IMAGE must be a Debian 12 image with Node.js 20 and npm, as node:20-bookworm-slim.
ARG BASE_IMAGE=node:20-bookworm-slim

FROM ${BASE_IMAGE} AS build
# better-sqlite3 is a native addon: npm fetches a prebuilt binary where it can reach one,
# and compiles it otherwise, which needs these.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY tsconfig.json tsconfig.build.json ./
COPY server server
COPY migrations migrations
RUN npm run build && npm prune --omit=dev --no-audit --no-fund --loglevel=error

FROM ${BASE_IMAGE}
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
COPY views views
# Group 0 may write too: platforms that run images as an arbitrary uid in the root group (OpenShift) still can.
RUN mkdir -p /data && chown 10001:0 /data && chmod 0775 /data
VOLUME /data
USER 10001:10001
ENV NODE_ENV=production \
    CUSTOM_IMAGES_DATABASE_URL=sqlite:///data/custom-images.sqlite \
    CUSTOM_IMAGES_WORK_DIR=/data/work \
    JUPYTERHUB_SERVICE_URL=http://0.0.0.0:10101
EXPOSE 10101
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["node", "dist/server/cli.js", "healthcheck"]
# Node runs as PID 1 and handles SIGTERM itself: in-flight requests and checks finish, exit 0.
ENTRYPOINT ["node", "--max-semi-space-size=32", "dist/server/main.js"]
