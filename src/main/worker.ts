/**
 * The sessions worker process (`npm run start:worker`): consumes the `sessions` queue and runs the
 * pipeline, publishing progress to the api processes through Redis. Run as many as needed;
 * SIGTERM finishes or hands back the jobs in flight.
 */
import { runMain } from "../core/runtime.ts"
import { WorkerProcess } from "../worker.ts"

runMain("worker", WorkerProcess)
