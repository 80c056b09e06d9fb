/**
 * `npm run prepare` (npm runs it after `npm install` and `npm ci`): installs the git hooks of
 * .husky/ (pre-commit: lint-staged; pre-push: typecheck and unit tests) by pointing git's
 * core.hooksPath at .husky/_. It never fails an install; it skips, saying why:
 * - in CI (CI set, as GitHub Actions and .ci/run do): nobody commits there;
 * - where husky is absent (`npm ci --omit=dev`, a production image);
 * - outside a git checkout (a tarball, a Docker build context), or with HUSKY=0.
 */
const ci = process.env["CI"]
if (ci !== undefined && ci !== "" && ci !== "0" && ci.toLowerCase() !== "false") {
  console.log("prepare: CI, git hooks not installed")
} else {
  const husky = await import("husky").then(
    (module) => module.default,
    () => undefined
  )
  if (husky === undefined) {
    console.log("prepare: husky is not installed (production install), git hooks not installed")
  } else {
    const problem = husky()
    console.log(
      problem === "" ? "prepare: git hooks installed (.husky)" : `prepare: ${problem}, git hooks not installed`
    )
  }
}
