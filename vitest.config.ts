import { defineConfig } from "vitest/config"

// Four projects: unit (layers swapped, no services), integration (this machine's PostgreSQL and
// Redis through the real clients), e2e (real processes spoken to over HTTP and WebSocket), and
// resilience (real processes under failures: killed workers, Redis restarts, terminated database
// connections, failing providers, a bounded load), one file at a time since each starts processes;
// not in `npm test`: it runs alone (a load run and memory readings beside other suites would be noise),
// with `npm run test:resilience`.
export default defineConfig({
  test: {
    // `npm run test:coverage`: V8 coverage of src/ (the unit project), a text summary in the terminal.
    coverage: {
      provider: "v8",
      include: ["src/**/*.ts"],
      exclude: ["src/core/db/generated/**"],
      reporter: ["text-summary"]
    },
    projects: [
      // Timeouts are guards, never assertions (tests wait on events): under CPU contention (two busy
      // loops beside the suite) sharp bursts, OCR and process boots run three to five times slower.
      { test: { name: "unit", include: ["test/unit/**/*.test.ts"], testTimeout: 30_000 } },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          globalSetup: ["test/support/database.global.ts"],
          // Every response from the local server is judged against the OpenAPI document (issue #16).
          setupFiles: ["test/support/conformance.setup.ts"],
          testTimeout: 30_000,
          hookTimeout: 60_000
        }
      },
      {
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          setupFiles: ["test/support/conformance.setup.ts"],
          // Most e2e tests boot processes (api, worker, dev server): seconds each on a busy machine.
          testTimeout: 120_000,
          hookTimeout: 90_000
        }
      },
      {
        test: {
          name: "resilience",
          include: ["test/resilience/**/*.test.ts"],
          globalSetup: ["test/support/database.global.ts"],
          pool: "forks",
          poolOptions: { forks: { singleFork: true } },
          testTimeout: 120_000,
          hookTimeout: 90_000
        }
      }
    ]
  }
})
