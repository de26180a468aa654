# The Task API gateway, multi-stage:
#   build    all dependencies, compiles src/ to dist/ (tsc)
#   deps     production dependencies only (npm ci --omit=dev), which include
#            tsx and dbmate for `npm run db:migrate` (the compose file's
#            migrate service uses this same image)
#   runtime  the two copied together, run as the unprivileged user `node`
#
#   docker build -t task-api .
#   docker run --rm -p 8000:8000 -e DATABASE_URL=... -e JWT_SECRET=... task-api

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE} AS runtime
# NODE_ENV=production: the server refuses to start without JWT_SECRET or
# JWKS_URL, so the image can never serve on a generated development secret.
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8000
WORKDIR /app
# Owned by root and read-only for the app's user: the process can change none
# of its own code.
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
COPY scripts ./scripts
COPY migrations ./migrations
COPY policies ./policies
COPY db ./db
# The node image's unprivileged user (uid 1000).
USER node
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8000) + '/health/live').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# The same command as `npm start` after its build (package.json).
CMD ["node", "--enable-source-maps", "--max-semi-space-size=4", "--heap-growing-percent=25", "dist/main.js"]
