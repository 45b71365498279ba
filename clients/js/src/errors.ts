/**
 * The SDK's errors, rooted at `SyncdError`. A server refusal
 * (`{error: {code, message, details}}`) becomes an `ApiError` with the HTTP status and
 * the protocol's machine `code`, so an app branches on `code`, not on text.
 */

export class SyncdError extends Error {
  override name = 'SyncdError'
}

/** The store has no device yet: sign in before editing or syncing. */
export class NotSignedIn extends SyncdError {
  override name = 'NotSignedIn'
}

/** No such entity in the local store. */
export class NotFound extends SyncdError {
  override name = 'NotFound'
}

/** This user may only read the entity (a viewer of its project): refused locally. */
export class ReadOnly extends SyncdError {
  override name = 'ReadOnly'
  readonly code = 'forbidden'
}

/** The local database was upgraded by a newer version of the app in another tab, and
 * this tab's store closed for it: reload the page. */
export class StaleStore extends SyncdError {
  override name = 'StaleStore'
}

/** The server refused a request. */
export class ApiError extends SyncdError {
  override name = 'ApiError'
  constructor (
    readonly status: number,
    readonly code: string,
    message = '',
    readonly details: Record<string, unknown> = {}
  ) {
    super(message ? `${status} ${code}: ${message}` : `${status} ${code}`)
  }
}

/** Authentication failed and a refresh could not cure it: the device is signed out. */
export class AuthError extends ApiError {
  override name = 'AuthError'
}

/** The server could not be reached (offline, or the connection broke). */
export class NetworkError extends SyncdError {
  override name = 'NetworkError'
}

/** Build the typed error for a refused response body. */
export function errorFromBody (status: number, body: unknown): ApiError {
  const err = (body as { error?: { code?: unknown, message?: unknown, details?: unknown } } | null)?.error
  const code = typeof err?.code === 'string' ? err.code : `http_${status}`
  const message = typeof err?.message === 'string' ? err.message : ''
  const details = (typeof err?.details === 'object' && err.details !== null ? err.details : {}) as Record<string, unknown>
  return status === 401 ? new AuthError(status, code, message, details) : new ApiError(status, code, message, details)
}
