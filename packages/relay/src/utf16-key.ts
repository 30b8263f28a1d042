/**
 * Encodes a string as a BLOB whose byte order is JavaScript's string order.
 *
 * JavaScript compares strings by UTF-16 code units; SQLite's BINARY collation compares TEXT
 * as UTF-8 bytes, which orders characters above U+FFFF (stored as surrogates, 0xD800–0xDFFF)
 * before U+E000–U+FFFF in JavaScript but after them in UTF-8. Writing each code unit as two
 * big-endian bytes makes `memcmp` (how SQLite compares BLOBs) agree with JavaScript exactly,
 * a shorter prefix first included. Lone surrogates survive the round trip unchanged.
 */
export function encodeUtf16Key(key: string): Buffer {
  return Buffer.from(key, 'utf16le').swap16()
}

/** The string {@link encodeUtf16Key} encoded; the input is not modified. */
export function decodeUtf16Key(blob: Uint8Array): string {
  return Buffer.from(blob).swap16().toString('utf16le')
}
