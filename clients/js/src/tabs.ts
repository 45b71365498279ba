/**
 * Tabs of one app on one account: a BroadcastChannel named after the store tells the
 * other tabs what changed (they refresh their views and open documents) and that the
 * outbox grew (the syncing tab pushes). Where there is no BroadcastChannel, or in Node
 * where one process owns a store, it does nothing.
 */

export type TabMessage = { type: 'changed', ids: string[] } | { type: 'outbox' }

export interface TabHandlers {
  changed: (ids: string[]) => void
  outbox: () => void
}

export class TabChannel {
  private readonly channel: BroadcastChannel | null

  constructor (name: string, handlers: TabHandlers) {
    const isBrowser = typeof (globalThis as { document?: unknown }).document !== 'undefined'
    this.channel = isBrowser && typeof BroadcastChannel !== 'undefined' ? new BroadcastChannel(`syncd:${name}`) : null
    if (this.channel !== null) {
      this.channel.onmessage = (m: MessageEvent<TabMessage>) => {
        if (m.data.type === 'changed') handlers.changed(m.data.ids)
        else handlers.outbox()
      }
    }
  }

  post (message: TabMessage): void {
    if (message.type === 'changed' && message.ids.length === 0) return
    this.channel?.postMessage(message)
  }

  close (): void {
    this.channel?.close()
  }
}
