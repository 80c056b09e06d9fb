/** Signs webhook deliveries the way Clerk's sender (svix / Standard Webhooks) does. */
import { createHmac, randomBytes, randomUUID } from "node:crypto"

export const TEST_WEBHOOK_SECRET = `whsec_${randomBytes(24).toString("base64")}`

export interface SignedDelivery {
  readonly body: string
  readonly headers: Record<string, string>
}

export interface SigningOptions {
  readonly id?: string
  readonly timestamp?: number
  readonly secret?: string
}

export const signDelivery = (event: unknown, options: SigningOptions = {}): SignedDelivery =>
  signBody(JSON.stringify(event), options)

/** Signs `body` as it is (not necessarily JSON). */
export const signBody = (body: string, options: SigningOptions = {}): SignedDelivery => {
  const id = options.id ?? `msg_${randomUUID()}`
  const timestamp = String(options.timestamp ?? Math.floor(Date.now() / 1000))
  const key = Buffer.from((options.secret ?? TEST_WEBHOOK_SECRET).replace(/^whsec_/, ""), "base64")
  const signature = createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest("base64")
  return {
    body,
    headers: {
      "content-type": "application/json",
      "svix-id": id,
      "svix-timestamp": timestamp,
      "svix-signature": `v1,${signature}`
    }
  }
}

export const clerkUserEvent = (
  type: "user.created" | "user.updated",
  user: {
    readonly id: string
    readonly email?: string
    readonly firstName?: string | null
    readonly lastName?: string | null
    readonly imageUrl?: string | null
    readonly updatedAt?: number
  }
) => ({
  type,
  object: "event",
  timestamp: Date.now(),
  data: {
    id: user.id,
    object: "user",
    email_addresses:
      user.email === undefined ? [] : [{ id: "idn_primary", object: "email_address", email_address: user.email }],
    primary_email_address_id: user.email === undefined ? null : "idn_primary",
    first_name: user.firstName ?? null,
    last_name: user.lastName ?? null,
    image_url: user.imageUrl ?? null,
    created_at: Date.now() - 1000,
    updated_at: user.updatedAt ?? Date.now()
  }
})
