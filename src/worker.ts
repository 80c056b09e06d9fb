/**
 * The sessions worker: the queue's consumer (a pool of fibers) running the pipeline, which reads
 * screenshots (the Ocr service: vision chain, local OCR last), on the infrastructure shared with
 * the api (infrastructure.ts; in `dev`, the very same in-process queue and progress bus).
 */
import { Layer } from "effect"
import { Ocr } from "./core/ocr/ocr.ts"
import { onInfrastructure } from "./infrastructure.ts"
import { WorkerLivenessLive } from "./modules/health/worker-liveness.ts"
import { MatchesService } from "./modules/matches/matches.service.ts"
import { MetricsLive } from "./modules/operations/metrics.ts"
import { ocrPromptV3 } from "./modules/sessions/prompts/ocr-v3.ts"
import {
  SessionPipeline,
  SessionsConsumerLive,
  SessionsReconcilerLive,
  SessionsSweeperLive
} from "./modules/sessions/sessions.pipeline.ts"
import { UploadsService } from "./modules/uploads/uploads.service.ts"

export const SessionsWorker = Layer.mergeAll(SessionsConsumerLive, SessionsSweeperLive, SessionsReconcilerLive).pipe(
  Layer.provide(SessionPipeline.Default),
  Layer.provide(MatchesService.Default.pipe(Layer.provideMerge(UploadsService.Default))),
  Layer.provide(Ocr.fromConfig(ocrPromptV3))
)

/** The worker process: the sessions consumer, and a liveness endpoint when WORKER_HEALTH_PORT is set. */
export const WorkerProcess = Layer.merge(
  SessionsWorker,
  WorkerLivenessLive.pipe(Layer.provide(MetricsLive("worker")))
).pipe(onInfrastructure("worker"))
