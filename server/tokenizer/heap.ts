// A binary min-heap of merge candidates for the BPE and SentencePiece merge loops, kept in typed
// arrays (no object per entry): ordered by `key` (rank, or minus a score), then by `pos` (the
// leftmost candidate first), each carrying two integers of payload.

export class CandidateHeap {
  private key = new Float64Array(64);
  private pos = new Int32Array(64);
  private a = new Int32Array(64);
  private b = new Int32Array(64);
  size = 0;

  // The entry taken by the last pop().
  topKey = 0;
  topPos = 0;
  topA = 0;
  topB = 0;

  clear(): void {
    this.size = 0;
  }

  private grow(): void {
    const n = this.key.length * 2;
    const key = new Float64Array(n);
    key.set(this.key);
    this.key = key;
    const pos = new Int32Array(n);
    pos.set(this.pos);
    this.pos = pos;
    const a = new Int32Array(n);
    a.set(this.a);
    this.a = a;
    const b = new Int32Array(n);
    b.set(this.b);
    this.b = b;
  }

  push(key: number, pos: number, a: number, b: number): void {
    if (this.size === this.key.length) this.grow();
    const K = this.key;
    const P = this.pos;
    let i = this.size++;
    // Move parents down into the hole until the new entry fits.
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (K[p] < key || (K[p] === key && P[p] <= pos)) break;
      K[i] = K[p];
      P[i] = P[p];
      this.a[i] = this.a[p];
      this.b[i] = this.b[p];
      i = p;
    }
    K[i] = key;
    P[i] = pos;
    this.a[i] = a;
    this.b[i] = b;
  }

  /** Removes the smallest entry into topKey/topPos/topA/topB. The heap must not be empty. */
  pop(): void {
    const K = this.key;
    const P = this.pos;
    const A = this.a;
    const B = this.b;
    this.topKey = K[0];
    this.topPos = P[0];
    this.topA = A[0];
    this.topB = B[0];
    const n = --this.size;
    if (n === 0) return;
    // Sift the last entry down from the root.
    const key = K[n];
    const pos = P[n];
    const a = A[n];
    const b = B[n];
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && (K[c + 1] < K[c] || (K[c + 1] === K[c] && P[c + 1] < P[c]))) c++;
      if (key < K[c] || (key === K[c] && pos <= P[c])) break;
      K[i] = K[c];
      P[i] = P[c];
      A[i] = A[c];
      B[i] = B[c];
      i = c;
    }
    K[i] = key;
    P[i] = pos;
    A[i] = a;
    B[i] = b;
  }
}
