/**
 * The OpenAPI document of the HTTP contract, exactly as the server serves it at `/openapi.json`
 * (`HttpLayerRouter.addHttpApi` builds it with `OpenApi.fromApi`): for the lint script and the
 * conformance harness of the test suites.
 */
import * as OpenApi from "@effect/platform/OpenApi"
import { WingmateApi } from "./api.ts"

export const openApiDocument = (): OpenApi.OpenAPISpec => OpenApi.fromApi(WingmateApi)
