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
# The old generation capped at 384 MiB, half the smallest pod limit (the base api's 768Mi;
# test/unit/deploy/node-options.test.ts keeps them in step): V8 sizes its heap from its cap, and with
# the 4 GiB it takes on a big host it let the api's heap grow from 300 to 480 MiB of RSS under the
# soak for the same ~100 MiB live; capped, flat at ~250 MiB (bench/README.md, "Soak"; issue #20).
# The young generation is left at V8's default: capping it (--max-semi-space-size=8) saved ~16 MiB
# at rest but cost 35-55 % more CPU per REST request under load (bench/README.md, "Footprint").
# The benches and the soak run the processes with these options.
ENV NODE_ENV=production \
    NODE_OPTIONS="--max-old-space-size=384" \
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
# The api keeps WebAssembly on V8's baseline compiler (--liftoff-only; Node refuses it in NODE_OPTIONS):
# its one WebAssembly, Prisma's query compiler, was recompiled by TurboFan after the first queries,
# ~65 MiB of compiler memory that glibc kept (after one list request 287-293 -> 214-232 MiB RSS) for
# no CPU measurable per statement. The worker keeps the optimising tier: tesseract, its local OCR
# fallback, reads ~1.7x slower without it (bench/README.md, "The api's WebAssembly on Liftoff").
# package.json's start, the compose file and the Kubernetes api run the same command
# (test/unit/deploy/node-options.test.ts).
CMD ["node", "--liftoff-only", "src/main/api.ts"]
