// ESLint (flat config): typescript-eslint's recommended rules plus the house rules of the brief.
import js from "@eslint/js"
import tseslint from "typescript-eslint"

export default tseslint.config(
  { ignores: ["node_modules/", ".data/", "coverage/", "src/core/db/generated/", "bench/results/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: "readonly", console: "readonly" } },
    rules: {
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "inline-type-imports" }],
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "no-console": "error"
    }
  },
  {
    // A package's index loads every module of it: @effect/platform's holds the Scalar and Swagger
    // bundles (~20 MB of heap as strings), @effect/platform-node's pulls @effect/cluster and
    // @effect/sql. The processes import the modules they use by path (issue #17).
    files: ["src/**"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          paths: ["@effect/platform", "@effect/platform-node"].map((name) => ({
            name,
            message: `Import the module by path (e.g. "${name}/HttpServerResponse"): the index loads all of ${name}.`
          }))
        }
      ]
    }
  },
  {
    // Command-line scripts and benchmarks talk to a terminal.
    files: ["scripts/**", "bench/**"],
    rules: { "no-console": "off" }
  }
)
