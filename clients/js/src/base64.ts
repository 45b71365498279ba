/** base64 for Yjs updates on the JSON wire, with only what browsers and Node both have. */

export function toBase64 (bytes: Uint8Array): string {
  let binary = ''
  // chunks keep String.fromCharCode's argument list short for large states
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000))
  }
  return btoa(binary)
}

export function fromBase64 (text: string): Uint8Array {
  const binary = atob(text)
  const out = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i)
  return out
}
