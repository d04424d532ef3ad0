// The GPT-2 byte <-> unicode mapping used by byte-level BPE vocabularies (tokenizer.ggml.model
// "gpt2"): every byte gets a printable character so that tokens can be stored as text. Printable
// Latin-1 bytes map to themselves; the other 68 bytes (controls, space, DEL, NBSP, soft hyphen)
// map to U+0100, U+0101, ... in byte order. So a space is "Ġ" (U+0120) and a newline "Ċ" (U+010A).

function buildByteToChar(): string[] {
  const chars: string[] = new Array(256);
  let next = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    chars[b] = String.fromCharCode(printable ? b : 256 + next++);
  }
  return chars;
}

/** BYTE_TO_CHAR[b] is the one-character string that stands for byte b. */
export const BYTE_TO_CHAR: readonly string[] = buildByteToChar();

/** Char code -> byte, or -1 for characters that stand for no byte. Covers U+0000..U+0143. */
const CHAR_TO_BYTE: Int16Array = (() => {
  const table = new Int16Array(0x144).fill(-1);
  BYTE_TO_CHAR.forEach((c, b) => {
    table[c.charCodeAt(0)] = b;
  });
  return table;
})();

/** The byte a mapped character stands for, or -1. */
export function charToByte(code: number): number {
  return code < CHAR_TO_BYTE.length ? CHAR_TO_BYTE[code] : -1;
}

/**
 * The bytes a byte-level token text stands for. Characters outside the mapping (which a
 * well-formed vocabulary never has in a normal token) contribute their own UTF-8 bytes.
 */
export function byteLevelDecode(text: string): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const b = charToByte(text.charCodeAt(i));
    if (b >= 0) {
      out.push(b);
      continue;
    }
    // Not a mapped character: keep it as UTF-8 (a surrogate pair is taken whole).
    const cp = text.codePointAt(i)!;
    if (cp > 0xffff) i++;
    for (const x of new TextEncoder().encode(String.fromCodePoint(cp))) out.push(x);
  }
  return Uint8Array.from(out);
}

/** Maps UTF-8 bytes to their byte-level characters. */
export function byteLevelEncode(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += BYTE_TO_CHAR[bytes[i]];
  return s;
}
