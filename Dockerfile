# syntax=docker/dockerfile:1
# Wingmate backend image: one image, three commands: the api (`node src/main/api.ts`, the default),
# the worker (`node src/main/worker.ts`) and the migration (`node scripts/db.ts deploy`).
# Node 22 runs the TypeScript sources directly (type stripping): there is no build output.

# Production dependencies only, without install scripts (the postinstall needs dev tools).
FROM node:22-alpine AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# Full install to generate the Prisma client and typecheck what ships.
FROM node:22-alpine AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
RUN npm run db:generate && npm run typecheck

FROM node:22-alpine AS runtime
# The young generation capped at 8 MiB per semi-space (V8's default grows it to 16 while booting and
# keeps it): 16 MiB less idle RSS in the api and the worker, no measurable CPU per request
# (bench/README.md, "Footprint"; issue #17). bench:footprint runs the processes with these options.
ENV NODE_ENV=production \
    NODE_OPTIONS="--max-semi-space-size=8" \
    PORT=3000
WORKDIR /app
COPY --from=prod-deps --chown=node:node /app/node_modules ./node_modules
COPY --from=build --chown=node:node /app/package.json ./package.json
COPY --from=build --chown=node:node /app/src ./src
COPY --from=build --chown=node:node /app/prisma ./prisma
# The migration command and the dev token of the local stack run from here.
COPY --from=build --chown=node:node /app/scripts ./scripts
# DATA_DIR: local storage (when no S3_BUCKET is set) and its signing secret.
RUN mkdir -p /app/.data && chown node:node /app/.data
USER node
EXPOSE 3000
# The api answers on PORT; a worker on WORKER_HEALTH_PORT when set (it serves nothing else).
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s \
  CMD wget -qO- "http://127.0.0.1:${WORKER_HEALTH_PORT:-${PORT}}/health/live" >/dev/null || exit 1
CMD ["node", "src/main/api.ts"]
