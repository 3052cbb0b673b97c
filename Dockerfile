# One image for every service; the service is the argument:
#   docker build -t cloudpay .
#   docker run --rm cloudpay account-management
# Multi-stage: the build stage compiles TypeScript to dist/ (npm run build) and drops the dev
# dependencies; the runtime stage holds only node, the production node_modules and dist/ (no tsx,
# no esbuild, no TypeScript) and runs as the unprivileged `node` user (uid 1000). node itself is
# PID 1, so SIGTERM reaches the process that drains (npm would not pass it on).
ARG NODE_IMAGE=node:22-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
# No embedded-database template (npm install's postinstall makes one for PGlite): the image runs on PostgreSQL.
ENV CLOUDPAY_PGLITE_TEMPLATES=off
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY gen gen
COPY services services
COPY cli cli
COPY sdk sdk
COPY scripts/build.sh scripts/check-runtime-imports.ts scripts/
RUN sh scripts/build.sh \
 && node --import tsx scripts/check-runtime-imports.ts \
 && npm prune --omit=dev --no-audit --no-fund

FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    CLOUDPAY_HOME=/tmp/cloudpay \
    CLOUDPAY_TRACE_FILE=off \
    CLOUDPAY_LOG_FORMAT=json
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
USER 1000:1000
# 15051-15056: each service's mTLS port (CLOUDPAY_<SVC>_LISTEN); 8081: the plaintext probe port.
EXPOSE 15051 15052 15053 15054 15055 15056 8081
ENTRYPOINT ["node", "dist/cli/service.js"]
