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

/**
 * A frame's UTF-8 bytes, encoded once for frames sent again and again in a row.
 *
 * The hub hands every connection of a space the same frame text one after another (fan-out),
 * with now and then another frame in between (the writer's own, which leaves its changes
 * out): the last two texts are kept, so that such a frame does not cost the next peers of
 * the run a fresh encoding. Texts are compared by value, which for the same string is one
 * pointer comparison.
 */
export function createFrameBytes(
  encode: (text: string) => Buffer = (text) => Buffer.from(text, 'utf8'),
): (text: string) => Buffer {
  let lastText = ''
  let lastBytes = encode('')
  let otherText = ''
  let otherBytes = lastBytes
  return (text) => {
    if (text === lastText) return lastBytes
    if (text !== otherText) {
      otherText = text
      otherBytes = encode(text)
    }
    // The two swap: the one asked for now is the last.
    const bytes = otherBytes
    otherText = lastText
    otherBytes = lastBytes
    lastText = text
    lastBytes = bytes
    return bytes
  }
}
