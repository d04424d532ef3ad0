// UTF-8 helpers for the tokenizer: encoding text to bytes, decoding bytes with U+FFFD for
// invalid sequences, and finding where an unfinished character starts at the end of a buffer so
// that the stream decoder can hold it back.
//
// Decoding follows the WHATWG "UTF-8 decode without BOM" algorithm (TextDecoder with fatal=false,
// ignoreBOM=true): every maximal subpart of an invalid sequence becomes one U+FFFD. Because a
// held-back tail always starts at a lead byte, decoding a buffer in two pieces split there gives
// the same text as decoding it whole; the stream decoder relies on that.

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** Replaces every unpaired UTF-16 surrogate by U+FFFD (what TextEncoder does when encoding). */
export function toWellFormed(text: string): string {
  LONE_SURROGATE.lastIndex = 0;
  return LONE_SURROGATE.test(text) ? text.replace(LONE_SURROGATE, '\uFFFD') : text;
}

export function utf8Encode(text: string): Uint8Array {
  return encoder.encode(text);
}

export function utf8Decode(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

/**
 * Length of the trailing part of `bytes[0, end)` that is a valid but unfinished UTF-8 sequence
 * (a lead byte followed by fewer continuation bytes than it needs, each allowed at its place),
 * or 0 when the buffer ends on a character boundary or on bytes that are invalid anyway.
 */
export function utf8IncompleteTail(bytes: Uint8Array, end: number = bytes.length): number {
  // An unfinished sequence is at most 3 bytes long: look back over at most 3 bytes for its lead.
  for (let back = 1; back <= 3 && back <= end; back++) {
    const lead = bytes[end - back];
    if (lead >= 0x80 && lead <= 0xbf) continue; // continuation byte: keep looking for the lead
    const need = lead >= 0xc2 && lead <= 0xdf ? 2 : lead >= 0xe0 && lead <= 0xef ? 3 : lead >= 0xf0 && lead <= 0xf4 ? 4 : 0;
    if (need <= back) return 0; // ASCII, invalid lead, or a sequence that is already complete
    // Check that the continuation bytes present so far are allowed (the second byte of E0, ED,
    // F0 and F4 sequences has a narrower range: no overlongs, surrogates or code points > 10FFFF).
    for (let k = 1; k < back; k++) {
      const c = bytes[end - back + k];
      let lo = 0x80;
      let hi = 0xbf;
      if (k === 1) {
        if (lead === 0xe0) lo = 0xa0;
        else if (lead === 0xed) hi = 0x9f;
        else if (lead === 0xf0) lo = 0x90;
        else if (lead === 0xf4) hi = 0x8f;
      }
      if (c < lo || c > hi) return 0;
    }
    return back;
  }
  return 0;
}
