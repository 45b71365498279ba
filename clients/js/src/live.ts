/**
 * Live sync over `/v1/sync/ws`: push the outbox, receive events as they commit.
 *
 * Each connection first catches up over HTTP (which also refreshes a stale token and
 * tells "offline" from "refused"), then says `hello {cursor}` with the stored cursor,
 * so a reconnect resumes exactly where the store is. Events at or below the cursor
 * are skipped; a gap (a frame starting past `cursor + 1`) and `resync` are filled by an
 * HTTP pull. A lost connection is retried with exponential backoff and full jitter,
 * at once when the browser says it is back online. In a browser, one tab per account
 * runs this loop (a Web Lock); the others wait their turn.
 */
import { AuthError } from './errors.js'
import type { Event, Op, OpResult } from './types.js'
import type { SyncClient } from './client.js'

export type Status = 'offline' | 'connecting' | 'online' | 'standby' | 'signed-out'

export interface LiveOptions {
  /** a WebSocket class for runtimes without a global one (Node 20: the `ws` package) */
  WebSocket?: typeof WebSocket
  /** backoff base and cap, in ms (defaults 500 and 30000) */
  backoffBase?: number
  backoffCap?: number
}

const PING_EVERY = 25_000
const CLOSE_UNAUTHORISED = 4401

/** Full jitter: uniform in [0, min(cap, base * 2**attempt)]. */
export function backoff (attempt: number, base = 500, cap = 30_000, random = Math.random): number {
  return random() * Math.min(cap, base * 2 ** Math.min(attempt, 16))
}

export function wsUrl (serverUrl: string, path: string, token: string): string {
  return serverUrl.replace(/^http/, 'ws') + `${path}?token=${encodeURIComponent(token)}`
}

type ServerFrame =
  | { type: 'welcome', head: number }
  | { type: 'events', events: Event[], cursor: number }
  | { type: 'ack', acked: number, cursor: number, results: OpResult[] }
  | { type: 'resync', cursor: number }
  | { type: 'error', code: string, message?: string, details?: Record<string, unknown> }
  | { type: 'pong' }

export class Live {
  private running = false
  private ws: WebSocket | null = null
  private welcomed = false
  private inflight: Op[] | null = null
  private blocked = false
  private chain: Promise<unknown> = Promise.resolve()
  private wake: (() => void) | null = null
  private readonly abort = new AbortController()
  private done: Promise<void> = Promise.resolve()

  constructor (private readonly client: SyncClient, private readonly options: LiveOptions) {}

  start (): void {
    this.running = true
    const locks = (globalThis.navigator as Navigator | undefined)?.locks
    globalThis.addEventListener?.('online', this.onOnline)
    if (locks === undefined) {
      this.done = this.loop()
      return
    }
    this.client.setStatus('standby')
    this.done = (async () => {
      try {
        await locks.request(`syncd-sync:${this.client.store.name}`, { signal: this.abort.signal },
          async () => { await this.loop() })
      } catch (e) {
        if ((e as Error).name !== 'AbortError') throw e
      }
    })()
  }

  async stop (): Promise<void> {
    this.running = false
    globalThis.removeEventListener?.('online', this.onOnline)
    this.abort.abort()
    this.ws?.close()
    this.wake?.()
    await this.done.catch(() => undefined)
    if (this.client.status !== 'signed-out') this.client.setStatus('offline')
  }

  reconnectNow (): void {
    this.wake?.()
  }

  private readonly onOnline = (): void => { this.reconnectNow() }

  /** Push the outbox's next batch if the socket is idle. */
  kick (): void {
    if (this.ws === null || !this.welcomed || this.inflight !== null || this.blocked) return
    const ws = this.ws
    this.step(async () => {
      if (this.inflight !== null || ws !== this.ws) return
      const batch = await this.client.store.exclusive(async () => await this.client.outbox.nextBatch())
      if (batch.length === 0) return
      this.inflight = batch
      ws.send(JSON.stringify({ type: 'push', ops: batch }))
    })
  }

  private step (fn: () => Promise<void>): void {
    this.chain = this.chain.then(async () => await this.client.liveStep(fn))
      .catch((e: unknown) => {
        console.warn('syncd: live sync step failed', e)
        this.ws?.close()
      })
  }

  private async loop (): Promise<void> {
    let attempt = 0
    while (this.running) {
      try {
        await this.session()
      } catch (e) {
        if (e instanceof AuthError) {
          this.client.setStatus('signed-out')
          this.running = false
          return
        }
      }
      if (!this.running) return
      this.client.setStatus('offline')
      if (this.welcomed) attempt = 0
      const delay = backoff(attempt++, this.options.backoffBase, this.options.backoffCap)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay)
        this.wake = () => { clearTimeout(timer); resolve() }
      })
      this.wake = null
    }
  }

  private async session (): Promise<void> {
    const client = this.client
    this.welcomed = false
    this.inflight = null
    this.blocked = false
    client.setStatus('connecting')
    await client.liveStep(async () => await client.pullPages())
    const token = await client.store.getMeta('access_token')
    if (token === undefined) throw new AuthError(401, 'unauthorised', 'not signed in')
    const WS = this.options.WebSocket ?? globalThis.WebSocket
    const ws = new WS(wsUrl(client.api.baseUrl, '/v1/sync/ws', token))
    this.ws = ws
    const code = await new Promise<number>((resolve) => {
      let ping: ReturnType<typeof setInterval> | undefined
      ws.onopen = () => {
        void client.cursor().then((cursor) => ws.send(JSON.stringify({ type: 'hello', cursor })))
        ping = setInterval(() => ws.send(JSON.stringify({ type: 'ping' })), PING_EVERY)
      }
      ws.onmessage = (m: MessageEvent) => {
        let frame: ServerFrame
        try {
          frame = JSON.parse(String(m.data)) as ServerFrame
        } catch {
          return
        }
        this.step(async () => { await this.handle(frame) })
      }
      ws.onclose = (e: CloseEvent) => {
        clearInterval(ping)
        resolve(e.code)
      }
    })
    await this.chain
    this.ws = null
    this.inflight = null
    if (code === CLOSE_UNAUTHORISED) await client.api.refresh(token)
  }

  private async handle (frame: ServerFrame): Promise<void> {
    const client = this.client
    switch (frame.type) {
      case 'welcome':
        this.welcomed = true
        client.setStatus('online')
        queueMicrotask(() => this.kick())
        return
      case 'events': {
        const first = frame.events[0]
        if (first !== undefined && first.seq > (await client.cursor()) + 1) await client.pullPages()
        await client.applyEvents(frame.events)
        return
      }
      case 'ack': {
        const batch = this.inflight
        this.inflight = null
        if (batch !== null) await client.store.exclusive(async () => await client.outbox.onResponse(batch, frame))
        queueMicrotask(() => this.kick())
        return
      }
      case 'resync':
        await client.pullPages()
        return
      case 'error':
        if (frame.code === 'client_seq_gap' && frame.details !== undefined) {
          await client.store.exclusive(async () => await client.outbox.onGap(Number(frame.details?.expected)))
          this.inflight = null
          queueMicrotask(() => this.kick())
          return
        }
        console.warn(`syncd: sync socket error ${frame.code}: ${frame.message ?? ''}`)
        if (this.inflight !== null) {
          // the server refused the push itself: do not resend it in a loop
          this.inflight = null
          this.blocked = true
        }
    }
  }
}
