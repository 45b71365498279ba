/**
 * Typed calls to the syncd HTTP API (docs/protocol.md), with the access token from the store
 * and refresh-token rotation on a 401.
 *
 * Refresh tokens rotate, and reusing a rotated one revokes the device, so a refresh
 * runs under the store's exclusive lock and first re-reads the tokens: a tab that finds
 * them replaced by another tab just retries with the new access token.
 */
import { AuthError, NetworkError, errorFromBody } from './errors.js'
import type { Event, Json, Op, PushResponse, Store } from './types.js'

export interface Tokens { access_token: string, refresh_token: string, expires_in?: number }
export interface User { id: string, email: string, name?: string | null }
export interface LoginResponse extends Tokens { user: User, device_id: string }
export interface PullResponse { events: Event[], cursor: number, has_more: boolean }
/** `settings`: the user's `{id, values, clocks, version, updated_at}`. */
export interface Snapshot { cursor: number, notes: Json[], projects: Json[], settings?: Json | null }

export class Api {
  /** Called when the server no longer takes this device's tokens (revoked, logged out). */
  onSignedOut: () => void = () => {}

  constructor (readonly baseUrl: string, private readonly store: Store) {}

  private async send (method: string, path: string, body?: unknown, token?: string): Promise<Response> {
    const headers: Record<string, string> = {}
    if (body !== undefined) headers['Content-Type'] = 'application/json'
    if (token !== undefined) headers.Authorization = `Bearer ${token}`
    const init = { method, headers, body: body === undefined ? undefined : JSON.stringify(body) }
    try {
      return await fetch(this.baseUrl + path, init)
    } catch {
      // once more: a kept-alive connection the server closed while idle fails at first use
      try {
        return await fetch(this.baseUrl + path, init)
      } catch (e) {
        throw new NetworkError(`${method} ${path}: ${String(e)}`)
      }
    }
  }

  private async decode<T> (response: Response): Promise<T> {
    const text = await response.text()
    let body: unknown = null
    try {
      body = text ? JSON.parse(text) : null
    } catch {
      body = null
    }
    if (!response.ok) throw errorFromBody(response.status, body)
    return body as T
  }

  /** A call without a token (register, login). */
  async anonymous<T> (method: string, path: string, body?: unknown): Promise<T> {
    return await this.decode<T>(await this.send(method, path, body))
  }

  /** An authenticated call: on 401, refresh once and retry once. */
  async call<T> (method: string, path: string, body?: unknown): Promise<T> {
    const used = await this.store.getMeta('access_token')
    if (used === undefined) throw new AuthError(401, 'unauthorised', 'not signed in')
    let response = await this.send(method, path, body, used)
    if (response.status === 401) {
      const fresh = await this.refresh(used)
      response = await this.send(method, path, body, fresh)
    }
    return await this.decode<T>(response)
  }

  /**
   * A new access token to replace `used`, refreshing if no other tab has done it yet.
   * A refused refresh signs the device out (tokens forgotten, local data kept).
   */
  async refresh (used: string): Promise<string> {
    return await this.store.exclusive(async () => {
      const current = await this.store.getMeta('access_token')
      if (current !== undefined && current !== used) return current
      const token = await this.store.getMeta('refresh_token')
      if (token === undefined) throw new AuthError(401, 'unauthorised', 'not signed in')
      const response = await this.send('POST', '/v1/auth/refresh', { refresh_token: token })
      if (response.status === 401 || response.status === 403) {
        const err = await this.decode<never>(response).catch((e: unknown) => e)
        await this.store.commit({ meta: { access_token: null, refresh_token: null } })
        this.onSignedOut()
        throw err instanceof AuthError ? err : new AuthError(401, 'unauthorised', 'signed out')
      }
      const tokens = await this.decode<Tokens>(response)
      await this.store.commit({ meta: { access_token: tokens.access_token, refresh_token: tokens.refresh_token } })
      return tokens.access_token
    })
  }

  async push (ops: Op[]): Promise<PushResponse> {
    return await this.call<PushResponse>('POST', '/v1/sync/push', { ops })
  }

  async pull (cursor: number, limit = 500): Promise<PullResponse> {
    return await this.call<PullResponse>('GET', `/v1/sync/pull?cursor=${cursor}&limit=${limit}`)
  }

  async snapshot (): Promise<Snapshot> {
    return await this.call<Snapshot>('GET', '/v1/sync/snapshot')
  }
}
