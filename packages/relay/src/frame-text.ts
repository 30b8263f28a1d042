const utf8 = new TextDecoder('utf-8', { fatal: true })

/** The payload size in bytes of a frame as `ws` delivers it (or a string). */
export function byteLength(data: unknown): number {
  if (typeof data === 'string') return Buffer.byteLength(data)
  if (data instanceof ArrayBuffer) return data.byteLength
  if (ArrayBuffer.isView(data)) return data.byteLength
  if (Array.isArray(data)) return data.reduce((sum: number, part) => sum + byteLength(part), 0)
  return 0
}

/**
 * A frame's payload as text. Binary frames are decoded as UTF-8 too; null when one is not
 * UTF-8 (or the payload is of no known kind).
 */
export function textOf(data: unknown, isBinary: boolean): string | null {
  if (typeof data === 'string') return data
  let bytes: Uint8Array
  if (data instanceof ArrayBuffer) bytes = new Uint8Array(data)
  else if (ArrayBuffer.isView(data)) bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  else if (Array.isArray(data)) bytes = Buffer.concat(data.filter((part) => part instanceof Uint8Array))
  else return null
  // `ws` has already checked that a text frame is UTF-8.
  if (!isBinary) return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')
  try {
    return utf8.decode(bytes)
  } catch {
    return null
  }
}
